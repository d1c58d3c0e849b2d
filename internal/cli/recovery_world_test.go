package cli

import (
	"fmt"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// What the recovery leaves behind besides the release being back: helm's history telling what
// happened.

// storedHistory reads the release's revisions from helm's storage, as `helm history` does,
// oldest first.
func storedHistory(t *testing.T, w *installed) []*release.Release {
	t.Helper()
	rels, err := storage.Init(driver.NewSecrets(w.kube.Client.CoreV1().Secrets(w.kube.Namespace))).History("identity")
	if err != nil {
		t.Fatal(err)
	}
	releaseutil.SortByRevision(rels)
	return rels
}

// historyLines are the revisions as `helm history` prints them: revision, status, description.
func historyLines(rels []*release.Release) []string {
	var lines []string
	for _, r := range rels {
		lines = append(lines, fmt.Sprintf("%d %s %q", r.Version, r.Info.Status, r.Info.Description))
	}
	return lines
}

func TestRolledBackUpgradeIsFailedInTheHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	if r := w.upgrade(t.Context(), t, "--set", "fault=crashloop"); r.code != ExitFailed {
		t.Fatalf("exit %d, want %d (rolled back)\n%s", r.code, ExitFailed, r.stderr)
	}
	hist := storedHistory(t, w)
	t.Logf("history:\n%s", strings.Join(historyLines(hist), "\n"))
	if len(hist) != 3 {
		t.Fatalf("%d revisions, want 3: the install, the upgrade, the rollback", len(hist))
	}
	up, back := hist[1].Info, hist[2].Info
	if up.Status != release.StatusFailed {
		t.Errorf("the rolled-back upgrade (revision 2) is %s, want failed", up.Status)
	}
	for _, want := range []string{"marked failed by identity-upgrade: readiness: not ready: pod identity-id-keycloak-0", "exit code 1",
		"; rolling back to revision 1"} {
		if !strings.Contains(up.Description, want) {
			t.Errorf("revision 2's description %q lacks %q", up.Description, want)
		}
	}
	if back.Status != release.StatusDeployed || back.Description != "Rollback to 1" {
		t.Errorf("revision 3 is %s %q, want deployed \"Rollback to 1\"", back.Status, back.Description)
	}
	w.endState(t, false)
}
