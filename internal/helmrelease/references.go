package helmrelease

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// referenced are the resources of the kinds a pod may need to exist.
var referenced = map[string]schema.GroupVersionResource{
	"Secret":                {Version: "v1", Resource: "secrets"},
	"ConfigMap":             {Version: "v1", Resource: "configmaps"},
	"PersistentVolumeClaim": {Version: "v1", Resource: "persistentvolumeclaims"},
	"ServiceAccount":        {Version: "v1", Resource: "serviceaccounts"},
	"PriorityClass":         {Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"},
	"StorageClass":          {Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"},
}

// missingReferences lists what the pods of rel (its manifest and its hooks) reference that
// neither rel creates nor the cluster has: the pods would never start. Each object is looked
// up once, by its metadata only (a Secret's data is never read); one the credentials may not
// read is listed with Unchecked set.
func (c *Client) missingReferences(ctx context.Context, rel *release.Release) ([]rollout.Reference, error) {
	docs := []string{rel.Manifest}
	for _, h := range rel.Hooks {
		docs = append(docs, h.Manifest)
	}
	objs, err := manifest.Objects(strings.Join(docs, "\n---\n"))
	if err != nil {
		return nil, fmt.Errorf("references of the new manifest: %w", err)
	}
	type key struct{ kind, namespace, name string }
	looked := map[key]string{} // "" exists, else why it is missing or unchecked
	var out []rollout.Reference
	for _, ref := range manifest.References(objs, c.namespace) {
		if manifest.Provides(objs, c.namespace, ref) {
			continue
		}
		k := key{ref.Kind, ref.Namespace, ref.Name}
		problem, ok := looked[k]
		if !ok {
			problem, err = c.lookUp(ctx, ref)
			if err != nil {
				return nil, err
			}
			looked[k] = problem
		}
		switch problem {
		case "":
		case "missing":
			out = append(out, rollout.Reference{Kind: ref.Kind, Name: ref.Name, Referrer: ref.Referrer, Field: ref.Field, Optional: ref.Optional})
		default:
			out = append(out, rollout.Reference{Kind: ref.Kind, Name: ref.Name, Referrer: ref.Referrer, Field: ref.Field, Optional: ref.Optional, Unchecked: problem})
		}
	}
	slices.SortStableFunc(out, func(a, b rollout.Reference) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// lookUp says whether the referenced object exists: "" when it does, "missing" when it does
// not, else why it could not be told (the credentials may not read it). An error is one that
// says nothing about the object (the cluster unreachable, ctx done).
func (c *Client) lookUp(ctx context.Context, ref manifest.Reference) (string, error) {
	gvr := referenced[ref.Kind]
	var err error
	if ref.Namespace == "" {
		_, err = c.meta.Resource(gvr).Get(ctx, ref.Name, metav1.GetOptions{})
	} else {
		_, err = c.meta.Resource(gvr).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	switch {
	case err == nil:
		return "", nil
	case apierrors.IsNotFound(err):
		return "missing", nil
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return "not checked: the credentials may not read " + gvr.Resource, nil
	}
	return "", fmt.Errorf("look up %s %s: %w", ref.Kind, ref.Name, err)
}
