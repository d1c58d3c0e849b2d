package readiness

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
)

// resource is one object of the manifest, resolved to its API resource.
type resource struct {
	// desired is the object as the manifest has it (namespace filled in).
	desired *unstructured.Unstructured
	gvr     schema.GroupVersionResource
	// namespace is "" for a cluster-scoped resource.
	namespace string
	name      string
	kind      string
}

// id names the resource as NotReady does: "Kind/name".
func (r *resource) id() string { return r.kind + "/" + r.name }

// key is the informer store key of the resource.
func (r *resource) key() string {
	if r.namespace == "" {
		return r.name
	}
	return r.namespace + "/" + r.name
}

// workload reports whether the resource runs pods that the pod-level signals apply to.
func (r *resource) workload() bool {
	if r.gvr.Group == "apps" {
		switch r.kind {
		case "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet":
			return true
		}
	}
	return r.gvr.Group == "batch" && r.kind == "Job"
}

// parseManifest resolves each object of a manifest (manifest.Objects) to its API resource,
// giving namespaced objects without a namespace the default one, each resource once.
func parseManifest(m, namespace string, mapper meta.RESTMapper) ([]*resource, error) {
	objs, err := manifest.Objects(m)
	if err != nil {
		return nil, err
	}
	var out []*resource
	seen := map[string]bool{}
	for _, u := range objs {
		r, err := resolve(u, namespace, mapper)
		if err != nil {
			return nil, err
		}
		if !seen[r.gvr.String()+r.key()] {
			seen[r.gvr.String()+r.key()] = true
			out = append(out, r)
		}
	}
	return out, nil
}

func resolve(u *unstructured.Unstructured, namespace string, mapper meta.RESTMapper) (*resource, error) {
	gvk := u.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("manifest object %q has no apiVersion or kind", u.GetName())
	}
	if u.GetName() == "" {
		return nil, fmt.Errorf("manifest %s has no metadata.name", gvk.Kind)
	}
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("resolve %s/%s: %w", gvk.Kind, u.GetName(), err)
	}
	r := &resource{desired: u, gvr: m.Resource, name: u.GetName(), kind: gvk.Kind}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if u.GetNamespace() == "" {
			u.SetNamespace(namespace)
		}
		r.namespace = u.GetNamespace()
		if r.namespace == "" {
			return nil, fmt.Errorf("%s is namespaced but neither it nor the request names a namespace", r.id())
		}
	}
	return r, nil
}
