package cli

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/kubelock"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The states the vendor's 2020 release is in on a 2026 cluster: installed before Kubernetes
// 1.22 with its Ingress on (the stored manifest in extensions/v1beta1, which 3.0.0 still
// renders too), values given under the keys 2.1.0 reads, and references the new pods need
// that nobody created. Each is found by plan and refused before anything changes, and fixed by
// the run with the input that consents to it.

// installedBefore122 installs the 1.3-like chart with its Ingress on as a cluster upgraded past
// Kubernetes 1.22 keeps it: the Ingress lives as networking.k8s.io/v1, while the release's
// stored manifest (written with helm's storage) still says extensions/v1beta1.
func installedBefore122(t *testing.T) *installed {
	t.Helper()
	return installWith(t, func(w *installed) error {
		values := map[string]any{"postgresql": w.db.ChartValues(), "ingress": map[string]any{"enabled": true, "hostName": "id.example.test"}}
		rel, err := w.helm.InstallWithRemovedAPIs(t.Context(), "identity", chart13, values, 2*time.Minute)
		if err == nil && !strings.Contains(rel.Manifest, "apiVersion: extensions/v1beta1\nkind: Ingress\n") {
			t.Fatalf("the stored manifest lost its extensions/v1beta1 Ingress:\n%s", rel.Manifest)
		}
		return err
	})
}

func (w *installed) ingressUID(t *testing.T) types.UID {
	t.Helper()
	ing, err := w.kube.Client.NetworkingV1().Ingresses(w.kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the live Ingress: %v", err)
	}
	return ing.UID
}

// keycloakUntouched checks that the Keycloak StatefulSet still runs the pod it ran before:
// never scaled, never replaced.
func (w *installed) keycloakUntouched(t *testing.T, pod types.UID) {
	t.Helper()
	sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *sts.Spec.Replicas != 1 || w.keycloakPod(t) != pod {
		t.Errorf("Keycloak was scaled or replaced: replicas %d, pod %s (was %s)", *sts.Spec.Replicas, w.keycloakPod(t), pod)
	}
	if leases, err := w.kube.Client.CoordinationV1().Leases(w.kube.Namespace).List(t.Context(), metav1.ListOptions{}); err != nil || len(leases.Items) != 0 {
		t.Errorf("leases left: %v, %v", leases, err)
	}
}

func (w *installed) keycloakPod(t *testing.T) types.UID {
	t.Helper()
	pod, err := w.kube.Client.CoreV1().Pods(w.kube.Namespace).Get(t.Context(), "identity-id-keycloak-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod.UID
}

func TestReleaseInstalledBeforeKubernetes122(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	removed := []string{"--map-removed-apis", "--convert-removed-apis"}
	t.Run("plan names both removed APIs and their inputs; the run maps, converts and upgrades in place", func(t *testing.T) {
		t.Parallel()
		w := installedBefore122(t)
		ingress, keycloak := w.ingressUID(t), w.keycloakPod(t)

		start := time.Now()
		r := w.run(t, "plan", "--recreate-statefulsets", "orphan")
		t.Logf("plan took %v", time.Since(start))
		if r.code != rollout.ExitRefused {
			t.Errorf("plan: exit %d, want %d", r.code, rollout.ExitRefused)
		}
		mustContain(t, r,
			"Removed APIs in the stored manifest of revision 1, refused without map-removed-apis:",
			"  Ingress/identity-id-keycloak extensions/v1beta1 → networking.k8s.io/v1 (removed in Kubernetes 1.22)",
			"Removed APIs in the render of chart alfresco-identity-service-3.0.0, refused without convert-removed-apis:",
			"give --map-removed-apis true", "give --convert-removed-apis true")
		if r := w.upgrade(t.Context(), t); r.code != rollout.ExitRefused || !strings.Contains(r.stdout, "give --map-removed-apis true") {
			t.Errorf("upgrade without consent: exit %d, want %d naming map-removed-apis", r.code, rollout.ExitRefused)
		}
		w.keycloakUntouched(t, keycloak)

		// With consent the plan shows the converted Ingress as changed in place.
		r = w.run(t, "upgrade", append([]string{"--recreate-statefulsets", "orphan", "--dry-run"}, removed...)...)
		if r.code != rollout.ExitOK {
			t.Fatalf("dry run with consent: exit %d\n%s", r.code, r.stderr)
		}
		mustContain(t, r, "~ Ingress/identity-id-keycloak", "would be mapped before the upgrade (map-removed-apis)", "converted (convert-removed-apis)",
			"pathType: Prefix")

		r = w.upgrade(t.Context(), t, removed...)
		if r.code != rollout.ExitOK {
			t.Fatalf("upgrade with consent: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, r, "Upgraded identity: revision 2 → 3", "map removed APIs", "revision 1 → 2: 1 objects (Ingress/identity-id-keycloak)")
		w.expect(t, 3, "3.0.0", "1.4.0")
		if got := w.ingressUID(t); got != ingress {
			t.Errorf("the Ingress was re-created: UID %s, was %s", got, ingress)
		}
		store := storage.Init(driver.NewSecrets(w.kube.Client.CoreV1().Secrets(w.kube.Namespace)))
		if rel, err := store.Get("identity", 2); err != nil || !strings.HasPrefix(rel.Info.Description, helmrelease.MappedDescription+" 1") {
			t.Errorf("revision 2's description: %v; want the map's", err)
		}
	})
	t.Run("a failing target rolls back to the mapped revision", func(t *testing.T) {
		t.Parallel()
		w := installedBefore122(t)
		ingress := w.ingressUID(t)
		r := w.upgrade(t.Context(), t, append([]string{"--set", "fault=crashloop"}, removed...)...)
		if r.code != rollout.ExitRolledBack {
			t.Fatalf("exit %d, want %d\n%s\n%s", r.code, rollout.ExitRolledBack, r.stdout, r.stderr)
		}
		mustContain(t, r, "identity is back at revision 2's release (now revision 4)")
		back, err := w.helm.Current("identity")
		if err != nil {
			t.Fatal(err)
		}
		if back.Revision != 4 || back.Status != "deployed" || back.ChartVersion != "2.1.0" || strings.Contains(back.Manifest, "apiVersion: extensions/v1beta1") {
			t.Errorf("after the rollback: revision %d %s chart %s; its manifest must be the mapped one", back.Revision, back.Status, back.ChartVersion)
		}
		if got := w.ingressUID(t); got != ingress {
			t.Errorf("the Ingress was re-created: UID %s, was %s", got, ingress)
		}
		w.endState(t, false)
	})
	t.Run("a run killed after the upgrade is recovered to the mapped revision", func(t *testing.T) {
		t.Parallel()
		w := installedBefore122(t)
		ingress := w.ingressUID(t)
		tmp := t.TempDir()
		env := []string{"RUNNER_TEMP=" + tmp}
		killed := w.start(t, env, atStep("readiness", func(p *os.Process) { p.Kill() }), append([]string{"--set", "fault=crashloop"}, removed...)...)
		if r := killed.wait(t); r.code != -1 {
			t.Fatalf("the run ended before the kill: exit %d", r.code)
		}
		if j := w.journal(t); j.RecordedRevision != 2 || j.MappedFrom != 1 {
			t.Errorf("the killed run's journal: recorded revision %d, mapped from %d; want 2 and 1", j.RecordedRevision, j.MappedFrom)
		}
		if err := w.kube.Client.CoordinationV1().Leases(w.kube.Namespace).Delete(t.Context(), kubelock.LeaseName("identity"), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		r := w.recover(t, tmp)
		if r.code != rollout.ExitRolledBack {
			t.Fatalf("recover: exit %d, want %d\n%s\n%s", r.code, rollout.ExitRolledBack, r.stdout, r.stderr)
		}
		back, err := w.helm.Current("identity")
		if err != nil {
			t.Fatal(err)
		}
		if back.Status != "deployed" || back.ChartVersion != "2.1.0" || strings.Contains(back.Manifest, "apiVersion: extensions/v1beta1") {
			t.Errorf("after the recovery: revision %d %s chart %s; want the mapped revision's chart and manifest", back.Revision, back.Status, back.ChartVersion)
		}
		if got := w.ingressUID(t); got != ingress {
			t.Errorf("the Ingress was re-created: UID %s, was %s", got, ingress)
		}
		w.endState(t, false)
	})
}

// installedWithOldKeys installs the 1.3-like chart with a customer's Keycloak settings under
// keycloak.keycloak, where 2.1.0 reads them: two replicas, the theme's init container and its
// volume, the realm imported by a JVM argument.
func installedWithOldKeys(t *testing.T) *installed {
	t.Helper()
	w := install13(t)
	values := map[string]any{"postgresql": w.db.ChartValues(), "keycloak": map[string]any{"keycloak": map[string]any{
		"replicas":  2,
		"extraArgs": "-Dkeycloak.import=/realm/alfresco-realm.json",
		"extraInitContainers": []any{map[string]any{"name": "acme-theme", "image": "acme/theme:1",
			"command":      []any{"cp", "-r", "/theme/.", "/themes/acme"},
			"volumeMounts": []any{map[string]any{"name": "acme-theme", "mountPath": "/themes/acme"}}}},
		"extraVolumes":      []any{map[string]any{"name": "acme-theme", "emptyDir": map[string]any{}}},
		"extraVolumeMounts": []any{map[string]any{"name": "acme-theme", "mountPath": "/opt/jboss/keycloak/themes/acme"}},
	}}}
	if _, err := w.helm.Upgrade(t.Context(), "identity", helmrelease.UpgradeSpec{Chart: chart13, Values: yamlOf(t, values)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestValuesUnderTheOldKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := installedWithOldKeys(t)
	r := w.run(t, "plan", "--recreate-statefulsets", "orphan")
	if r.code != rollout.ExitRefused {
		t.Errorf("plan: exit %d, want %d", r.code, rollout.ExitRefused)
	}
	mustContain(t, r, "these would be dropped without a word:",
		"keycloak.keycloak.replicas → keycloak.replicas = 2 (reused)",
		"keycloak.keycloak.extraInitContainers → keycloak.extraInitContainers = [1 items] (reused)",
		`keycloak.keycloak.extraArgs (-Dkeycloak.import=…) → keycloak.extraEnv (KEYCLOAK_IMPORT) = "/realm/alfresco-realm.json" (reused)`,
		"give --migrate-values true")
	// Without reused values nothing would be dropped: not refused for them.
	if r := w.run(t, "plan", "--recreate-statefulsets", "orphan", "--reuse-values=false", "--values", yamlOf(t, map[string]any{"postgresql": w.db.ChartValues()})); r.code != rollout.ExitOK {
		t.Errorf("plan with reuse-values false: exit %d\n%s", r.code, r.stdout)
	}

	r = w.upgrade(t.Context(), t, "--migrate-values")
	if r.code != rollout.ExitOK {
		t.Fatalf("upgrade with migrate-values: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := sts.Spec.Template.Spec
	var env []string
	for _, e := range pod.Containers[0].Env {
		env = append(env, e.Name+"="+e.Value)
	}
	if *sts.Spec.Replicas != 2 || len(pod.InitContainers) != 1 || pod.InitContainers[0].Name != "acme-theme" ||
		!slices.Contains(env, "KEYCLOAK_IMPORT=/realm/alfresco-realm.json") || !hasVolume(sts, "acme-theme") {
		t.Errorf("the customer's settings did not reach 3.0.0: replicas %d, init containers %+v, env %v", *sts.Spec.Replicas, pod.InitContainers, env)
	}
}

func hasVolume(sts *appsv1.StatefulSet, name string) bool {
	return slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
}

func TestReferencesNobodyCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	for _, tc := range []struct {
		name, missing string
		flags         []string
	}{
		{"the image pull Secret", "Secret/quay-registry-secret (imagePullSecrets of StatefulSet/identity-id-keycloak) does not exist in namespace", nil},
		{"the claim", "PersistentVolumeClaim/alfresco-volume-claim (volume data of StatefulSet/identity-id-keycloak) does not exist",
			[]string{"--set", "persistence.existingClaim=alfresco-volume-claim"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := install13(t)
			if strings.HasPrefix(tc.missing, "Secret/quay-registry-secret") {
				if err := w.kube.Client.CoreV1().Secrets(w.kube.Namespace).Delete(t.Context(), "quay-registry-secret", metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			keycloak := w.keycloakPod(t)
			r := w.upgrade(t.Context(), t, tc.flags...)
			if r.code != rollout.ExitRefused {
				t.Errorf("exit %d, want %d", r.code, rollout.ExitRefused)
			}
			mustContain(t, r, tc.missing)
			w.keycloakUntouched(t, keycloak)
		})
	}
	t.Run("an optional ConfigMap", func(t *testing.T) {
		t.Parallel()
		w := install13(t)
		keycloak := w.keycloakPod(t)
		theme := "keycloak:\n  extraEnv:\n    - name: THEME\n      valueFrom: {configMapKeyRef: {name: acme-theme, key: name, optional: true}}\n"
		r := w.run(t, "plan", "--recreate-statefulsets", "orphan", "--values", theme)
		if r.code != rollout.ExitOK {
			t.Errorf("exit %d, want 0 (only warned)", r.code)
		}
		mustContain(t, r, "Warnings:", "ConfigMap/acme-theme (container keycloak env THEME of StatefulSet/identity-id-keycloak) does not exist; it is optional")
		w.keycloakUntouched(t, keycloak)
	})
}

// TestThemeOfADroppedInitContainer: the customer's login theme comes from an init container
// given to 2.1.0 under keycloak.keycloak; an upgrade that does not carry it over
// (reuse-values false, the target's values alone) leaves 3.0.0 without the theme while every
// readiness check passes. plan warns naming the theme and its init container; the upgrade's
// theme check fails it after readiness and rolls it back (exit 1): the release, the theme and
// the database as before.
func TestThemeOfADroppedInitContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("an upgrade on the simulated cluster")
	}
	t.Parallel()
	w := installedWithOldKeys(t)
	w.before = dbContent(t, w.db)
	kc := testworld.StartKeycloak(t, "/auth", testworld.KeycloakRealm{Name: "master"},
		testworld.KeycloakRealm{Name: "alfresco", LoginTheme: "acme", EmailTheme: "alfresco"})
	kc.WatchPods(w.kube, "app.kubernetes.io/name=keycloak")
	w.env = map[string]string{"KEYCLOAK_ADMIN_PASSWORD": kc.Password}
	target := []string{"--reuse-values=false", "--values", yamlOf(t, map[string]any{"postgresql": w.db.ChartValues()}),
		"--keycloak-url", kc.URL, "--keycloak-admin-user", kc.User}

	plan := w.run(t, "plan", append([]string{"--recreate-statefulsets", "orphan"}, target...)...)
	if plan.code != rollout.ExitOK {
		t.Fatalf("plan: exit %d\n%s\n%s", plan.code, plan.stdout, plan.stderr)
	}
	mustContain(t, plan, `the target would not have theme "acme", which realm alfresco names as its login theme (init container acme-theme (image acme/theme:1) of revision 2; the target's values bring none)`)

	r := w.upgrade(t.Context(), t, target...)
	if r.code != rollout.ExitRolledBack {
		t.Fatalf("exit %d, want %d (rolled back: the theme is missing)\n%s\n%s", r.code, rollout.ExitRolledBack, r.stdout, r.stderr)
	}
	mustContain(t, r, "theme check: a theme a realm names is missing from the new Keycloak",
		`realm alfresco: login theme "acme" (init container acme-theme (image acme/theme:1))`)
	w.expect(t, 4, "2.1.0", "1.3")
	sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ics := sts.Spec.Template.Spec.InitContainers; len(ics) != 1 || ics[0].Name != "acme-theme" {
		t.Errorf("after the rollback Keycloak's init containers are %+v, want the theme's", ics)
	}
	if got := dbContent(t, w.db); got != w.before {
		t.Error("the database differs from before the upgrade")
	}
}
