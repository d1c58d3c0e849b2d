package helmrelease

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type staticMapper struct{ m meta.RESTMapper }

func (s staticMapper) ToRESTMapper() (meta.RESTMapper, error) { return s.m, nil }

func testMapper() staticMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	return staticMapper{m}
}

const keycloakSTS = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: identity-id-keycloak}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: keycloak
        image: alfresco/alfresco-identity-service:1.4.0
        env:
        - {name: DB_ADDR, valueFrom: {secretKeyRef: {name: identity-id-keycloak-db, key: DB_ADDR}}}
        - {name: DB_DATABASE, valueFrom: {secretKeyRef: {name: identity-id-keycloak-db, key: DB_DATABASE}}}
        - {name: KEYCLOAK_IMPORT, value: /realm/realm.json}
`

const postgresSTS = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: identity-postgresql-id}
spec:
  replicas: 1
  template:
    spec:
      containers:
      - {name: postgresql, image: "postgres:11.8"}
`

const ingress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: identity-id-keycloak}
`

// TestCloneRenderer: the clone of a target drops its Ingress, holds Keycloak (not PostgreSQL) at
// 0, points Keycloak at a database of the user's when given one, and refuses cluster-scoped
// objects.
func TestCloneRenderer(t *testing.T) {
	in := "---\n" + keycloakSTS + "---\n" + postgresSTS + "---\n" + ingress
	p := &cloneRenderer{mapper: testMapper(), secret: "identity-rehearsal-database",
		db: &CloneDatabase{Host: "scratch.db", Port: "5433", Name: "kc_rehearsal", User: "keycloak"}}
	out, err := p.Run(bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"name: identity-postgresql-id\nspec:\n  replicas: 1", "name: identity-id-keycloak\nspec:\n  replicas: 0",
		"name: DB_ADDR\n          value: scratch.db", "name: DB_DATABASE\n          value: kc_rehearsal",
		"name: DB_PASSWORD\n          valueFrom:\n            secretKeyRef:\n              key: password\n              name: identity-rehearsal-database",
		"name: KEYCLOAK_IMPORT"} {
		if !strings.Contains(got, want) {
			t.Errorf("the clone lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "kind: Ingress") || strings.Contains(got, "identity-id-keycloak-db") {
		t.Errorf("the clone keeps the Ingress or production's database variables:\n%s", got)
	}
	if p.held[0] != "StatefulSet/identity-id-keycloak" || p.dropped[0] != "Ingress/identity-id-keycloak" {
		t.Errorf("held %v, dropped %v", p.held, p.dropped)
	}

	_, err = (&cloneRenderer{mapper: testMapper()}).Run(bytes.NewBufferString(in + "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: identity-reader}\n"))
	if err == nil || !strings.Contains(err.Error(), "ClusterRole/identity-reader") {
		t.Errorf("a cluster-scoped object: err %v, want it named", err)
	}
}
