package manifest_test

import (
	"slices"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
)

func TestReferences(t *testing.T) {
	const m = `---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: identity-id-keycloak}
spec:
  template:
    spec:
      serviceAccountName: keycloak
      priorityClassName: identity-high
      imagePullSecrets: [{name: quay-registry-secret}]
      initContainers:
      - name: theme
        envFrom: [{configMapRef: {name: theme-settings, optional: true}}]
      containers:
      - name: keycloak
        env:
        - {name: DB_VENDOR, value: postgres}
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: identity-id-keycloak-db, key: DB_PASSWORD}}
        - name: LOG_LEVEL
          valueFrom: {configMapKeyRef: {name: logging, key: level, optional: true}}
        envFrom: [{secretRef: {name: extra-env}}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: alfresco-volume-claim}
      - name: realm
        secret: {secretName: realm-secret}
      - name: themes
        emptyDir: {}
      - name: all
        projected:
          sources:
          - secret: {name: projected-secret}
          - configMap: {name: projected-config, optional: true}
      - name: scratch
        ephemeral: {volumeClaimTemplate: {spec: {storageClassName: fast}}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {storageClassName: standard}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: other}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccount: backup
          containers: [{name: dump}]
          volumes: [{name: cfg, configMap: {name: backup-config}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim}
spec: {storageClassName: ""}
---
apiVersion: v1
kind: Secret
metadata: {name: identity-id-keycloak-db}
`
	objs, err := manifest.Objects(m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range manifest.References(objs, "identity") {
		got = append(got, r.Namespace+" "+r.String())
	}
	sts := " of StatefulSet/identity-id-keycloak)"
	want := []string{
		"identity Secret/quay-registry-secret (imagePullSecrets" + sts,
		"identity ServiceAccount/keycloak (serviceAccountName" + sts,
		" PriorityClass/identity-high (priorityClassName" + sts,
		"identity ConfigMap/theme-settings (container theme envFrom" + sts + ", optional",
		"identity Secret/identity-id-keycloak-db (container keycloak env DB_PASSWORD" + sts,
		"identity ConfigMap/logging (container keycloak env LOG_LEVEL" + sts + ", optional",
		"identity Secret/extra-env (container keycloak envFrom" + sts,
		"identity PersistentVolumeClaim/alfresco-volume-claim (volume data" + sts,
		"identity Secret/realm-secret (volume realm" + sts,
		"identity Secret/projected-secret (volume all (projected)" + sts,
		"identity ConfigMap/projected-config (volume all (projected)" + sts + ", optional",
		" StorageClass/fast (volume scratch (ephemeral)" + sts,
		" StorageClass/standard (volumeClaimTemplate data" + sts,
		"other ServiceAccount/backup (serviceAccount of CronJob/backup)",
		"other ConfigMap/backup-config (volume cfg of CronJob/backup)",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("references:\n%q\nwant:\n%q", got, want)
	}

	refs := manifest.References(objs, "identity")
	for _, r := range refs {
		provided := manifest.Provides(objs, "identity", r)
		if provided != (r.Object() == "Secret/identity-id-keycloak-db") {
			t.Errorf("Provides(%s) = %v", r, provided)
		}
	}
}
