package helmrelease_test

import (
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
)

func TestDiffTextRedactsSecrets(t *testing.T) {
	current := `apiVersion: v1
kind: Secret
metadata: {name: db}
data: {DB_PASSWORD: b2xkLXNlY3JldA==, DB_USER: a2V5Y2xvYWs=}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kc}
spec:
  selector: {matchLabels: {app: kc}}
  template: {spec: {containers: [{name: keycloak, image: "alfresco/alfresco-identity-service:1.3"}]}}
`
	target := `apiVersion: v1
kind: Secret
metadata: {name: db}
data: {DB_PASSWORD: bmV3LXNlY3JldA==, DB_USER: a2V5Y2xvYWs=}
stringData: {EXTRA: plain-secret}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kc}
spec:
  selector: {matchLabels: {app: kc}}
  template: {spec: {containers: [{name: keycloak, image: "alfresco/alfresco-identity-service:1.4.0"}]}}
---
apiVersion: v1
kind: Service
metadata: {name: kc}
spec: {ports: [{port: 80}]}
`
	changes, err := helmrelease.DiffManifests(current, target, "ns")
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, c := range changes {
		all += c.Diff
	}
	for _, secret := range []string{"b2xkLXNlY3JldA==", "bmV3LXNlY3JldA==", "plain-secret", "a2V5Y2xvYWs="} {
		if strings.Contains(all, secret) {
			t.Errorf("the diff shows the secret value %q:\n%s", secret, all)
		}
	}
	for _, want := range []string{
		"-      - image: alfresco/alfresco-identity-service:1.3\n+      - image: alfresco/alfresco-identity-service:1.4.0",
		"-  DB_PASSWORD: (redacted)\n+  DB_PASSWORD: (redacted, changed)",
		"+  EXTRA: (redacted)",
		"+kind: Service",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the diff lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "DB_USER") && strings.Contains(all, "+  DB_USER") {
		t.Errorf("an unchanged secret key shows as changed:\n%s", all)
	}
}
