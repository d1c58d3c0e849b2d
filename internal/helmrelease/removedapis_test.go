package helmrelease_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// installedOn121 is the release of the 1.3-like chart with its Ingress on as a cluster upgraded
// past Kubernetes 1.22 keeps it: the Ingress lives as networking.k8s.io/v1, the stored manifest
// still says extensions/v1beta1.
func installedOn121(t *testing.T, kube testworld.Kube) (*helmrelease.Client, types.UID) {
	t.Helper()
	client, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: kube.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]any{"hooks": map[string]any{"enabled": false}, "ingress": map[string]any{"enabled": true, "hostName": "id.example.test"}}
	rel, err := client.InstallWithRemovedAPIs(t.Context(), "identity", chart13, values, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rel.Manifest, "apiVersion: extensions/v1beta1\nkind: Ingress\n") {
		t.Fatalf("the stored manifest does not keep the removed API:\n%s", rel.Manifest)
	}
	ing, err := kube.Client.NetworkingV1().Ingresses(kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the live Ingress (networking.k8s.io/v1): %v", err)
	}
	return client, ing.UID
}

func ingressUID(t *testing.T, kube testworld.Kube) types.UID {
	t.Helper()
	ing, err := kube.Client.NetworkingV1().Ingresses(kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ing.UID
}

// TestRemovedAPIsInTheStoredRelease starts from a release installed before Kubernetes 1.22:
// helm cannot upgrade it at all; mapped, it upgrades to a target whose Ingress is converted,
// in place, and rolls back to the mapped revision.
func TestRemovedAPIsInTheStoredRelease(t *testing.T) {
	kube := testworld.Cluster(t)
	client, uid := installedOn121(t, kube)
	spec := helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true, Set: []string{"keycloak.imagePullSecrets=null"}}

	// The field's state: helm fails on the target's Ingress, and once that is converted, on the
	// stored manifest; each error names the input that fixes it.
	_, err := client.Upgrade(t.Context(), "identity", spec, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "ensure CRDs are installed first") || !strings.Contains(err.Error(), "convert-removed-apis") {
		t.Fatalf("upgrade to the unconverted target: %v, want helm's error for its Ingress with the input that fixes it", err)
	}
	converted := spec
	converted.ConvertRemovedAPIs = true
	_, err = client.Upgrade(t.Context(), "identity", converted, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "unable to build kubernetes objects from current release manifest") || !strings.Contains(err.Error(), "map-removed-apis") {
		t.Fatalf("upgrade of the unmapped release: %v, want helm's removed-API error with the input that fixes it", err)
	}
	if cur, err := client.Current("identity"); err != nil || cur.Revision != 1 {
		t.Fatalf("the failed upgrades stored revision %d, %v", cur.Revision, err)
	}

	// The render reads a mapped copy, and names both: the stored Ingress and the target's.
	renderer := helmrelease.Renderer{Client: client, Spec: spec}
	target, err := renderer.Render(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	want := "Ingress/identity-id-keycloak extensions/v1beta1 → networking.k8s.io/v1 (removed in Kubernetes 1.22)"
	if len(target.RemovedAPIs) != 1 || !strings.HasPrefix(target.RemovedAPIs[0].String(), want) {
		t.Errorf("RemovedAPIs = %v, want %s", target.RemovedAPIs, want)
	}
	if len(target.ConvertedAPIs) != 1 || !strings.HasPrefix(target.ConvertedAPIs[0].String(), want) {
		t.Errorf("ConvertedAPIs = %v, want %s", target.ConvertedAPIs, want)
	}
	t.Logf("objects converted: %d in the stored release, %d in the render", len(target.RemovedAPIs), len(target.ConvertedAPIs))
	cur, err := client.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := renderer.Diff(cur, target)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Kind == "Ingress" && c.Action != rollout.Changed {
			t.Errorf("the diff shows the Ingress as %s: the stored one is compared as the API server serves it", c.Action)
		}
	}

	// Mapped: a new revision, deployed, with served APIs; the old one superseded.
	mapped, convs, err := client.MapRemovedAPIs(t.Context(), cur)
	if err != nil {
		t.Fatal(err)
	}
	if mapped.Revision != 2 || mapped.Status != "deployed" || len(convs) != 1 || strings.Contains(mapped.Manifest, "apiVersion: extensions/v1beta1") {
		t.Fatalf("mapped: revision %d %s, %v\n%s", mapped.Revision, mapped.Status, convs, mapped.Manifest)
	}
	if old, err := client.Revision(t.Context(), "identity", 1); err != nil || old.Status != "superseded" {
		t.Errorf("revision 1 after the map: %s, %v", old.Status, err)
	}
	if d, err := client.StoredDescription("identity", 2); err != nil || !strings.HasPrefix(d, helmrelease.MappedDescription+" 1 (Ingress/identity-id-keycloak)") {
		t.Errorf("description of the mapped revision: %q, %v", d, err)
	}
	if again, convs, err := client.MapRemovedAPIs(t.Context(), mapped); err != nil || again.Revision != 2 || len(convs) != 0 {
		t.Errorf("mapping the mapped revision: %d, %v, %v; want it as it is", again.Revision, convs, err)
	}

	// Upgraded with the render converted: the Ingress is updated in place. (The postgres
	// StatefulSet is re-created as the pipeline does: its selector changes.)
	spec.ConvertRemovedAPIs = true
	if err := client.OrphanStatefulSets(t.Context(), []string{postgresSts}); err != nil {
		t.Fatal(err)
	}
	up, err := client.Upgrade(t.Context(), "identity", spec, time.Minute)
	if err != nil {
		t.Fatalf("upgrade of the mapped release: %v", err)
	}
	if up.Revision != 3 || ingressUID(t, kube) != uid {
		t.Errorf("upgraded to revision %d; Ingress UID %s, want %s (kept)", up.Revision, ingressUID(t, kube), uid)
	}
	ing, err := kube.Client.NetworkingV1().Ingresses(kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := ing.Spec.Rules[0].HTTP.Paths[0]; p.PathType == nil || *p.PathType != "Prefix" {
		t.Errorf("the Ingress did not take the target's pathType: %+v", p)
	}

	// And back to the mapped revision.
	if err := client.OrphanStatefulSets(t.Context(), []string{postgresSts}); err != nil {
		t.Fatal(err)
	}
	back, err := client.Rollback(t.Context(), "identity", mapped.Revision, rollout.RollbackOptions{DisableHooks: true, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("rollback to the mapped revision: %v", err)
	}
	if back.Revision != 4 || back.ChartVersion != "2.1.0" || ingressUID(t, kube) != uid {
		t.Errorf("rolled back to revision %d chart %s; Ingress UID kept: %v", back.Revision, back.ChartVersion, ingressUID(t, kube) == uid)
	}
}

// TestRenderFindsMissingReferences: the 1.4-like chart pulls with quay-registry-secret, and a
// claim and a ConfigMap are named in values; the render lists what does not exist.
func TestRenderFindsMissingReferences(t *testing.T) {
	kube := testworld.Cluster(t)
	client := install13(t, kube, map[string]any{"hooks": map[string]any{"enabled": false}})
	spec := helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true, Values: `
persistence: {existingClaim: alfresco-volume-claim}
keycloak:
  extraEnv:
    - name: THEME
      valueFrom: {configMapKeyRef: {name: acme-theme, key: name, optional: true}}
`}
	target, err := helmrelease.Renderer{Client: client, Spec: spec}.Render(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range target.MissingReferences {
		s := r.String()
		if r.Optional {
			s += " optional"
		}
		got = append(got, s)
	}
	want := []string{
		"ConfigMap/acme-theme (container keycloak env THEME of StatefulSet/identity-id-keycloak) optional",
		"PersistentVolumeClaim/alfresco-volume-claim (volume data of StatefulSet/identity-id-keycloak)",
		"Secret/quay-registry-secret (imagePullSecrets of StatefulSet/identity-id-keycloak)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("missing references:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Once they exist, nothing is missing (the DB Secret the manifest creates never was).
	if err := kube.CreatePullSecret(t.Context(), "quay-registry-secret"); err != nil {
		t.Fatal(err)
	}
	if err := kube.CreateClaim(t.Context(), "alfresco-volume-claim"); err != nil {
		t.Fatal(err)
	}
	target, err = helmrelease.Renderer{Client: client, Spec: spec}.Render(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	if len(target.MissingReferences) != 1 || !target.MissingReferences[0].Optional {
		t.Errorf("missing references after creating them: %v", target.MissingReferences)
	}
}

// TestRenderMovesValues: values given to the 1.3-like chart under keycloak.keycloak are reused
// under a key the 1.4-like chart does not read, unless moved.
func TestRenderMovesValues(t *testing.T) {
	kube := testworld.Cluster(t)
	client := install13(t, kube, map[string]any{"hooks": map[string]any{"enabled": false}, "keycloak": map[string]any{"keycloak": map[string]any{
		"replicas":  2,
		"extraArgs": "-Dkeycloak.import=/realm/alfresco-realm.json",
	}}})
	spec := helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true}
	plain, err := helmrelease.Renderer{Client: client, Spec: spec}.Render(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	var moves []string
	for _, m := range plain.ValueMoves {
		moves = append(moves, m.String())
	}
	want := []string{
		`keycloak.keycloak.extraArgs (-Dkeycloak.import=…) → keycloak.extraEnv (KEYCLOAK_IMPORT) = "/realm/alfresco-realm.json"`,
		"keycloak.keycloak.replicas → keycloak.replicas = 2",
	}
	if strings.Join(moves, "\n") != strings.Join(want, "\n") {
		t.Errorf("moves:\n%s\nwant:\n%s", strings.Join(moves, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Contains(plain.UnreadValues, "keycloak.keycloak") || !strings.Contains(plain.Manifest, "replicas: 1\n") {
		t.Errorf("without migrate-values: unread %v; the target must run 1 replica (the value dropped)", plain.UnreadValues)
	}

	spec.MigrateValues = true
	moved, err := helmrelease.Renderer{Client: client, Spec: spec}.Render(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(moved.UnreadValues, "keycloak.keycloak") || !strings.Contains(moved.Manifest, "replicas: 2\n") || !strings.Contains(moved.Manifest, "name: KEYCLOAK_IMPORT") {
		t.Errorf("with migrate-values: unread %v, manifest:\n%s", moved.UnreadValues, moved.Manifest)
	}
}
