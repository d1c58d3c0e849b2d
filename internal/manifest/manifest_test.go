package manifest_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
)

func TestObjects(t *testing.T) {
	const m = `---
# Source: identity/templates/empty.yaml
---
# Source: identity/templates/sts.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: identity-keycloak
  labels: {app: keycloak}
spec:
  replicas: 2
---

---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: b}
---
apiVersion: v1
kind: ConfigMapList
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
---
apiVersion: v1
kind: Service
metadata: {name: identity, namespace: other}
`
	objs, err := manifest.Objects(m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	want := "StatefulSet//identity-keycloak ConfigMap//a ConfigMap//b ConfigMap//c Service/other/identity"
	if strings.Join(got, " ") != want {
		t.Errorf("objects = %q, want %q", strings.Join(got, " "), want)
	}
	if n, ok, err := unstructured.NestedInt64(objs[0].Object, "spec", "replicas"); n != 2 || !ok || err != nil {
		t.Errorf("spec.replicas = %d, %v, %v; want the int64 2", n, ok, err)
	}
	if objs[0].GetLabels()["app"] != "keycloak" {
		t.Errorf("labels = %v", objs[0].GetLabels())
	}
}

func TestObjectsErrors(t *testing.T) {
	for _, m := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [unclosed\n",
		"apiVersion: v1\nkind: List\nitems: [1]\n",
	} {
		if _, err := manifest.Objects(m); err == nil || !strings.Contains(err.Error(), "manifest document") {
			t.Errorf("Objects(%q) error = %v, want one naming the document", m, err)
		}
	}
	if objs, err := manifest.Objects(""); err != nil || len(objs) != 0 {
		t.Errorf("Objects(\"\") = %v, %v; want none", objs, err)
	}
}
