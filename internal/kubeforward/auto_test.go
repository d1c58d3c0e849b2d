package kubeforward

import (
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
)

// bitnami is how the real chart's bundled PostgreSQL (a bitnami postgresql subchart renamed
// postgresql-id) renders: a headless Service the StatefulSet names, and the client Service.
const bitnami = `
apiVersion: v1
kind: Service
metadata: {name: identity-postgresql-id-headless}
spec:
  clusterIP: None
  selector: {app: postgresql-id, release: identity}
  ports: [{name: tcp-postgresql, port: 5432, targetPort: tcp-postgresql}]
---
apiVersion: v1
kind: Service
metadata: {name: identity-postgresql-id}
spec:
  selector: {app: postgresql-id, release: identity, role: master}
  ports: [{name: tcp-postgresql, port: 5432, targetPort: tcp-postgresql}]
---
apiVersion: v1
kind: Service
metadata: {name: identity-id-keycloak-http}
spec:
  selector: {app.kubernetes.io/name: keycloak}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: identity-id-keycloak}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: keycloak}}
  template:
    metadata: {labels: {app.kubernetes.io/name: keycloak}}
    spec:
      containers: [{name: keycloak, image: alfresco/alfresco-identity-service:1.3, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: identity-postgresql-id, labels: {app: postgresql-id}}
spec:
  serviceName: identity-postgresql-id-headless
  selector: {matchLabels: {app: postgresql-id, release: identity, role: master}}
  template:
    metadata: {labels: {app: postgresql-id, release: identity, role: master}}
    spec:
      containers: [{name: identity-postgresql-id, image: docker.io/bitnami/postgresql:11.7.0-debian-10-r9, ports: [{name: tcp-postgresql, containerPort: 5432}]}]
`

func TestFromManifest(t *testing.T) {
	// The StatefulSet and its containers' PostgreSQL port; the Services do not matter.
	want := forwardspec.Spec{Kind: forwardspec.KindStatefulSet, Name: "identity-postgresql-id", Port: "5432"}
	got, err := FromManifest(bitnami)
	if err != nil || got != want {
		t.Errorf("bitnami-like: %+v, %v", got, err)
	}
	var noService []string
	for doc := range strings.SplitSeq(bitnami, "---") {
		if !strings.Contains(doc, "kind: Service") {
			noService = append(noService, doc)
		}
	}
	if got, err = FromManifest(strings.Join(noService, "---")); err != nil || got != want {
		t.Errorf("without a Service: %+v, %v", got, err)
	}

	if _, err := FromManifest(strings.Split(bitnami, "---")[2] + "---" + strings.Split(bitnami, "---")[3]); err == nil || !strings.Contains(err.Error(), "no PostgreSQL StatefulSet") {
		t.Errorf("no PostgreSQL: %v", err)
	}
	// A Keycloak that names its database in a label is still Keycloak (manifest.Classify).
	labelled := strings.Replace(bitnami, "metadata: {name: identity-id-keycloak}", "metadata: {name: identity-id-keycloak, labels: {database: postgresql}}", 1)
	if got, err := FromManifest(labelled); err != nil || got.Name != "identity-postgresql-id" {
		t.Errorf("a Keycloak with a database label: %+v, %v", got, err)
	}
	two := bitnami + "---" + strings.ReplaceAll(strings.Split(bitnami, "---")[4], "name: identity-postgresql-id,", "name: other-db,")
	if _, err := FromManifest(two); err == nil || !strings.Contains(err.Error(), "2 PostgreSQL StatefulSets (identity-postgresql-id, other-db)") {
		t.Errorf("two: %v", err)
	}
}
