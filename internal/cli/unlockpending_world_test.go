package cli

import (
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// interruptedUpgrade leaves the release as a run killed during helm's update of an upgrade to
// fault=unschedulable leaves it: revision 2 pending-upgrade, its objects applied (the Keycloak
// StatefulSet has a nodeSelector no node matches), revision 1 still deployed.
func interruptedUpgrade(t *testing.T) *installed {
	t.Helper()
	w := install13(t)
	spec := helmrelease.UpgradeSpec{Chart: chart13, ReuseValues: true, Set: []string{"fault=unschedulable"}}
	if _, err := w.helm.Upgrade(t.Context(), "identity", spec, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := w.keycloakNodeSelector(t); len(got) == 0 {
		t.Fatal("the interrupted revision applied no nodeSelector")
	}
	store := storage.Init(driver.NewSecrets(w.kube.Client.CoreV1().Secrets(w.kube.Namespace)))
	for revision, status := range map[int]release.Status{2: release.StatusPendingUpgrade, 1: release.StatusDeployed} {
		rel, err := store.Get("identity", revision)
		if err != nil {
			t.Fatal(err)
		}
		rel.Info.Status = status
		if err := store.Update(rel); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *installed) keycloakNodeSelector(t *testing.T) map[string]string {
	t.Helper()
	sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sts.Spec.Template.Spec.NodeSelector
}

// TestUnlockPendingReconcilesTheInterruptedRevision: helm's three-way merge starts from the
// deployed revision's manifest, which lacks what the interrupted revision applied; the upgrade
// after unlock-pending must not keep it.
func TestUnlockPendingReconcilesTheInterruptedRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := interruptedUpgrade(t)
	start := time.Now()
	r := w.upgrade(t.Context(), t, "--unlock-pending")
	t.Logf("the run took %v", time.Since(start))
	if r.code != rollout.ExitOK {
		t.Errorf("exit %d, want %d: the upgrade after unlock-pending failed\n%s", r.code, rollout.ExitOK, r.stderr)
	}
	if got := w.keycloakNodeSelector(t); len(got) != 0 {
		t.Errorf("the Keycloak StatefulSet keeps the interrupted revision's nodeSelector %v", got)
	}
	if r.code == rollout.ExitOK {
		w.expect(t, 3, "3.0.0", "1.4.0")
	}
}
