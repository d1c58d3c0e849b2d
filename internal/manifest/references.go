package manifest

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Reference is an object that an object of a manifest needs to exist: a Secret, ConfigMap,
// PersistentVolumeClaim or ServiceAccount in the referrer's namespace, or a PriorityClass or
// StorageClass (cluster-wide: Namespace ""). A pod whose reference is missing never starts.
type Reference struct {
	Kind      string
	Namespace string
	Name      string
	// Referrer is "Kind/name" of the object that needs it, Field where ("imagePullSecrets",
	// "container keycloak env DB_PASSWORD", "volume data").
	Referrer string
	Field    string
	// Optional: the reference is marked optional: true, and a pod starts without it.
	Optional bool
}

// Object names the referenced object as "Kind/name".
func (r Reference) Object() string { return r.Kind + "/" + r.Name }

func (r Reference) String() string {
	s := fmt.Sprintf("%s (%s of %s)", r.Object(), r.Field, r.Referrer)
	if r.Optional {
		s += ", optional"
	}
	return s
}

// clusterScoped are the referenced kinds that live outside namespaces.
var clusterScoped = map[string]bool{"PriorityClass": true, "StorageClass": true}

// podSpecPaths is where each kind keeps the spec of the pods it makes.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// References lists what objs need to exist: everything the pods they make reference
// (imagePullSecrets, a service account, a priority class, env and envFrom, volumes and
// projected sources), and the StorageClass of every claim they make (PersistentVolumeClaims,
// volumeClaimTemplates, ephemeral volumes). namespace is where objects without one live.
// Whether a reference exists, in the cluster or among objs, is the caller's to find out.
func References(objs []*unstructured.Unstructured, namespace string) []Reference {
	var out []Reference
	for _, o := range objs {
		ns := cmp.Or(o.GetNamespace(), namespace)
		add := func(kind, name, field string, optional bool) {
			if name == "" {
				return
			}
			r := Reference{Kind: kind, Namespace: ns, Name: name, Referrer: o.GetKind() + "/" + o.GetName(), Field: field, Optional: optional}
			if clusterScoped[kind] {
				r.Namespace = ""
			}
			out = append(out, r)
		}
		if o.GetKind() == "PersistentVolumeClaim" {
			if sc, ok := str(o.Object, "spec", "storageClassName"); ok {
				add("StorageClass", sc, "storageClassName", false)
			}
		}
		if o.GetKind() == "StatefulSet" {
			for _, t := range list(o.Object, "spec", "volumeClaimTemplates") {
				name, _ := str(t, "metadata", "name")
				if sc, ok := str(t, "spec", "storageClassName"); ok {
					add("StorageClass", sc, "volumeClaimTemplate "+name, false)
				}
			}
		}
		path, ok := podSpecPaths[o.GetKind()]
		if !ok {
			continue
		}
		spec, _, _ := unstructured.NestedMap(o.Object, path...)
		if spec == nil {
			continue
		}
		podReferences(spec, add)
	}
	return out
}

// podReferences calls add for each reference of one pod spec.
func podReferences(spec map[string]any, add func(kind, name, field string, optional bool)) {
	for _, s := range list(spec, "imagePullSecrets") {
		name, _ := str(s, "name")
		add("Secret", name, "imagePullSecrets", false)
	}
	if sa, ok := str(spec, "serviceAccountName"); ok {
		add("ServiceAccount", sa, "serviceAccountName", false)
	} else if sa, ok := str(spec, "serviceAccount"); ok {
		add("ServiceAccount", sa, "serviceAccount", false)
	}
	if pc, ok := str(spec, "priorityClassName"); ok {
		add("PriorityClass", pc, "priorityClassName", false)
	}
	for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
		for _, c := range list(spec, field) {
			cname, _ := str(c, "name")
			where := "container " + cname
			for _, e := range list(c, "env") {
				ename, _ := str(e, "name")
				for kind, key := range map[string]string{"Secret": "secretKeyRef", "ConfigMap": "configMapKeyRef"} {
					ref, _, _ := unstructured.NestedMap(e, "valueFrom", key)
					if ref != nil {
						name, _ := str(ref, "name")
						add(kind, name, where+" env "+ename, optional(ref))
					}
				}
			}
			for _, e := range list(c, "envFrom") {
				for kind, key := range map[string]string{"Secret": "secretRef", "ConfigMap": "configMapRef"} {
					ref, _, _ := unstructured.NestedMap(e, key)
					if ref != nil {
						name, _ := str(ref, "name")
						add(kind, name, where+" envFrom", optional(ref))
					}
				}
			}
		}
	}
	for _, v := range list(spec, "volumes") {
		vname, _ := str(v, "name")
		where := "volume " + vname
		if s, _, _ := unstructured.NestedMap(v, "secret"); s != nil {
			name, _ := str(s, "secretName")
			add("Secret", name, where, optional(s))
		}
		if c, _, _ := unstructured.NestedMap(v, "configMap"); c != nil {
			name, _ := str(c, "name")
			add("ConfigMap", name, where, optional(c))
		}
		if name, ok := str(v, "persistentVolumeClaim", "claimName"); ok {
			add("PersistentVolumeClaim", name, where, false)
		}
		if sc, ok := str(v, "ephemeral", "volumeClaimTemplate", "spec", "storageClassName"); ok {
			add("StorageClass", sc, where+" (ephemeral)", false)
		}
		for _, p := range list(v, "projected", "sources") {
			if s, _, _ := unstructured.NestedMap(p, "secret"); s != nil {
				name, _ := str(s, "name")
				add("Secret", name, where+" (projected)", optional(s))
			}
			if c, _, _ := unstructured.NestedMap(p, "configMap"); c != nil {
				name, _ := str(c, "name")
				add("ConfigMap", name, where+" (projected)", optional(c))
			}
		}
	}
}

// Provides reports whether objs create the object a reference names.
func Provides(objs []*unstructured.Unstructured, namespace string, r Reference) bool {
	return slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool {
		ns := cmp.Or(o.GetNamespace(), namespace)
		if clusterScoped[o.GetKind()] {
			ns = ""
		}
		return o.GetKind() == r.Kind && o.GetName() == r.Name && ns == r.Namespace
	})
}

func optional(ref map[string]any) bool {
	b, _, _ := unstructured.NestedBool(ref, "optional")
	return b
}

// str is the non-empty string at path.
func str(m map[string]any, path ...string) (string, bool) {
	s, ok, _ := unstructured.NestedString(m, path...)
	return s, ok && s != ""
}

// list is the list of maps at path.
func list(m map[string]any, path ...string) []map[string]any {
	items, _, _ := unstructured.NestedSlice(m, path...)
	var out []map[string]any
	for _, it := range items {
		if mm, ok := it.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}
