package kubeforward

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{
		"service/identity-postgresql-id":      {Kind: KindService, Name: "identity-postgresql-id"},
		"service/identity-postgresql-id:5432": {Kind: KindService, Name: "identity-postgresql-id", Port: "5432"},
		"pod/identity-postgresql-id-0:tcp-pg": {Kind: KindPod, Name: "identity-postgresql-id-0", Port: "tcp-pg"},
	} {
		got, err := ParseSpec(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"auto", "deployment/db", "service/", "service/DB", "pod/db:0", "pod/db:70000", "pod/db:", "service/db:Bad_Name", "pod/a/b"} {
		if got, err := ParseSpec(in); err == nil {
			t.Errorf("ParseSpec(%q) = %+v, want an error", in, got)
		}
	}
}

func TestParseSecretRef(t *testing.T) {
	got, err := ParseSecretRef("secret/identity-postgresql-id:postgresql-password")
	if err != nil || got != (SecretRef{Name: "identity-postgresql-id", Key: "postgresql-password"}) {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, in := range []string{"identity-postgresql-id:postgresql-password", "secret/identity", "secret/:key", "secret/x:", "secret/X:key", "secret/x:a/b"} {
		if got, err := ParseSecretRef(in); err == nil {
			t.Errorf("ParseSecretRef(%q) = %+v, want an error", in, got)
		}
	}
}

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
	got, err := FromManifest(bitnami)
	if err != nil || got != (Spec{Kind: KindService, Name: "identity-postgresql-id", Port: "5432"}) {
		t.Errorf("bitnami-like: %+v, %v", got, err)
	}

	// Without a Service: the StatefulSet's first pod, on its PostgreSQL port.
	var noService []string
	for doc := range strings.SplitSeq(bitnami, "---") {
		if !strings.Contains(doc, "kind: Service") {
			noService = append(noService, doc)
		}
	}
	got, err = FromManifest(strings.Join(noService, "---"))
	if err != nil || got != (Spec{Kind: KindPod, Name: "identity-postgresql-id-0", Port: "5432"}) {
		t.Errorf("without a Service: %+v, %v", got, err)
	}

	if _, err := FromManifest(strings.Split(bitnami, "---")[2] + "---" + strings.Split(bitnami, "---")[3]); err == nil || !strings.Contains(err.Error(), "no PostgreSQL StatefulSet") {
		t.Errorf("no PostgreSQL: %v", err)
	}
	two := bitnami + "---" + strings.ReplaceAll(strings.Split(bitnami, "---")[4], "name: identity-postgresql-id,", "name: other-db,")
	if _, err := FromManifest(two); err == nil || !strings.Contains(err.Error(), "2 PostgreSQL StatefulSets (identity-postgresql-id, other-db)") {
		t.Errorf("two: %v", err)
	}
}
