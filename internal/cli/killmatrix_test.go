package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/kubelock"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// The kill matrix: the real binary is killed with SIGKILL (no signal handler runs, as with a
// lost runner, an OOM kill or GitHub's final kill) at a step of the upgrade; then one more run,
// `upgrade` again or `recover`, must end with the release deployed at the recorded revision
// (everything as before, the database as it was before the upgrade, Keycloak's replicas back)
// or upgraded, never pending; the run journal closed; and no working copy (plaintext dump,
// release manifest with its Secrets) left on the machine.

// migrateWhenReady applies the Keycloak 12 migration as the new version starts: what makes
// a rollback without the database restore wrong.
func (w *installed) migrateWhenReady(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, "identity-id-keycloak", metav1.GetOptions{})
		return err == nil && sts.Status.ReadyReplicas > 0 && strings.HasSuffix(sts.Spec.Template.Spec.Containers[0].Image, ":1.4.0"), nil
	})
	if err == nil {
		var sql []byte
		if sql, err = os.ReadFile("../../testdata/sql/keycloak-12-migration.sql"); err == nil {
			_, err = w.db.Run(t.Context(), "SET ROLE "+w.db.Owner+";\n"+string(sql))
		}
	}
	if err != nil {
		t.Errorf("migrate while the new version runs: %v", err)
	}
}

// journal reads the release's run journal from the cluster.
func (w *installed) journal(t *testing.T) rollout.Journal {
	t.Helper()
	cm, err := w.kube.Client.CoreV1().ConfigMaps(w.kube.Namespace).Get(t.Context(), kubelock.LeaseName("identity"), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return rollout.Journal{} // killed before its first write
	}
	if err != nil {
		t.Fatalf("the run journal: %v", err)
	}
	var j rollout.Journal
	if err := json.Unmarshal([]byte(cm.Data[kubelock.JournalKey]), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestKillMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("kills whole upgrades on the simulated cluster")
	}
	type point struct {
		name string
		step string // the step whose start the kill follows
		log  string // or: a log line the kill follows
		// before runs at that moment, before the kill (the new version migrating).
		before func(t *testing.T, w *installed)
		flags  []string
	}
	crash := []string{"--set", "fault=crash-after-ready", "--set", "faultDelay=3s", "--stability-window", "20s"}
	points := []point{
		{name: "after the lock", step: "journal"},
		{name: "during the quiesce", step: "quiesce"},
		{name: "during the backup", step: "backup"},
		{name: "after the backup", step: "upgrade"},
		{name: "between the orphan delete and helm's update", log: "deleted StatefulSet, orphaning its pods"},
		{name: "right after helm's update", log: "msg=\"upgraded release\""},
		{name: "in the stability window", log: "all resources ready; stability window", flags: []string{"--stability-window", "20s"}},
		{name: "after readiness, before the lock is released", log: "msg=\"step done\" step=readiness"},
		{name: "during readiness, schema migrated", step: "readiness", before: func(t *testing.T, w *installed) { w.migrateWhenReady(t) }, flags: crash},
		{name: "during the database restore", step: "restore database", before: nil, flags: crash},
		{name: "during the rollback", step: "rollback", flags: crash},
		{name: "during the wait after the rollback", step: "readiness after rollback", flags: crash},
	}
	for _, pt := range points {
		for _, next := range []string{"upgrade", "recover"} {
			t.Run(pt.name+", then "+next, func(t *testing.T) {
				t.Parallel()
				w := install13(t)
				tmp := t.TempDir()
				env := []string{"RUNNER_TEMP=" + tmp}
				migrate := atStep("readiness", func(*os.Process) { go w.migrateWhenReady(t) })
				killed := w.start(t, env, func(line string, p *os.Process) {
					// The steps of the recovery come after a migration by the new version.
					if pt.step == "restore database" || pt.step == "rollback" || pt.step == "readiness after rollback" {
						migrate(line, p)
					}
					kill := func(p *os.Process) {
						if pt.before != nil {
							pt.before(t, w)
						}
						p.Kill()
					}
					if pt.log != "" {
						if strings.Contains(line, pt.log) {
							kill(p)
						}
						return
					}
					atStep(pt.step, kill)(line, p)
				}, pt.flags...)
				r := killed.wait(t)
				if r.code != -1 {
					t.Logf("the run ended before the kill (exit %d)", r.code)
				}
				// A killed run's Lease stays until it expires (2 minutes); its error message
				// says to delete it when that run is gone, which is what an operator does.
				if err := w.kube.Client.CoordinationV1().Leases(w.kube.Namespace).Delete(t.Context(), kubelock.LeaseName("identity"), metav1.DeleteOptions{}); err != nil && r.code == -1 {
					t.Logf("delete the killed run's lease: %v", err)
				}
				var again result
				if next == "upgrade" {
					again = w.start(t, env, nil).wait(t)
				} else {
					again = w.recover(t, tmp)
				}
				if again.code != rollout.ExitOK && again.code != rollout.ExitRolledBack {
					t.Fatalf("%s after the kill: exit %d\n%s\n%s", next, again.code, again.stdout, again.stderr)
				}
				if j := w.journal(t); j.Open() {
					t.Errorf("the journal is still open after %s: %+v", next, j)
				}
				cur, err := w.helm.Current("identity")
				if err != nil || cur.Pending() {
					t.Fatalf("release %d %s, %v", cur.Revision, cur.Status, err)
				}
				deployed, err := w.helm.Deployed(t.Context(), "identity")
				if err != nil {
					t.Fatal(err)
				}
				upgraded := deployed.ChartVersion == "3.0.0"
				if upgraded && strings.Contains(again.stdout, "Recovered an interrupted run") {
					t.Errorf("recovered, yet the release is upgraded")
				}
				w.endStateOfDB(t, upgraded)
				left, _ := filepath.Glob(filepath.Join(tmp, "identity-upgrade-work", "*", "run-*"))
				if len(left) > 0 {
					t.Errorf("working copies left on the machine: %v", left)
				}
			})
		}
	}
}

// endStateOfDB is endStateOf for a run that may have ended upgraded, where the database is
// what the new version made of it.
func (w *installed) endStateOfDB(t *testing.T, upgraded bool) {
	t.Helper()
	if !upgraded {
		w.endStateOf(t, false, false)
		return
	}
	cur, err := w.helm.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	w.expect(t, cur.Revision, "3.0.0", "1.4.0")
}

// recover runs `identity-upgrade recover` for w's release, in-process, with the runner's
// temporary directory tmp.
func (w *installed) recover(t *testing.T, tmp string) result {
	t.Helper()
	args := []string{"recover", "--release-name", "identity", "--namespace", w.kube.Namespace,
		"--db-host", w.db.Host, "--db-port", strconv.Itoa(w.db.Port), "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable", "--backup-store", "path:" + w.stores, "--timeout", "90s"}
	env := map[string]string{"KUBECONFIG": w.kube.Kubeconfig, "PGPASSWORD": w.db.OwnerPassword, "RUNNER_TEMP": tmp}
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("identity-upgrade recover: exit %d\n%s", code, r.stdout)
	return r
}

// TestGitHubStyleCancel cancels a run the way GitHub cancels a container step: SIGINT, SIGTERM
// 7.5 s later, SIGKILL 2.5 s after that, while the run waits for a new version that migrated
// a database of over 200 MB. The run gets its recovery done within its cancel budget, or
// leaves the rest in its journal: after `recover` the release, Keycloak and the database are
// as before the upgrade either way.
func TestGitHubStyleCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole upgrade on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	w.db.Exec(t, "SET ROLE "+w.db.Owner+"; CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 32) AS payload FROM generate_series(1, 210000) g")
	if size := strings.TrimSpace(w.db.Exec(t, "SELECT pg_database_size(current_database()) / 1000000")); len(size) < 3 {
		t.Fatalf("database of %s MB, want at least 200", size)
	}
	w.before = dbContent(t, w.db)
	tmp := t.TempDir()
	start := time.Now()
	p := w.start(t, []string{"RUNNER_TEMP=" + tmp}, atStep("readiness", func(p *os.Process) {
		w.migrateWhenReady(t)
		p.Signal(syscall.SIGINT)
		time.AfterFunc(7500*time.Millisecond, func() { p.Signal(syscall.SIGTERM) })
		time.AfterFunc(10*time.Second, func() { p.Kill() })
	}), "--set", "fault=crash-after-ready", "--set", "faultDelay=5s", "--stability-window", "60s", "--timeout", "3m")
	r := p.wait(t)
	t.Logf("the cancelled run ended after %s with exit %d", time.Since(start).Round(100*time.Millisecond), r.code)
	if r.code == -1 || w.journal(t).Open() {
		// Killed before its recovery finished: the journal hands it on.
		w.kube.Client.CoordinationV1().Leases(w.kube.Namespace).Delete(t.Context(), kubelock.LeaseName("identity"), metav1.DeleteOptions{})
		if again := w.recover(t, tmp); again.code != rollout.ExitRolledBack && again.code != rollout.ExitOK {
			t.Fatalf("recover: exit %d\n%s", again.code, again.stderr)
		}
	} else if r.code != rollout.ExitRolledBack {
		t.Fatalf("cancelled run: exit %d, want 1 (rolled back) or killed\n%s", r.code, r.stdout)
	}
	if j := w.journal(t); j.Open() {
		t.Errorf("journal still open: %+v", j)
	}
	w.endState(t, false)
	if left, _ := filepath.Glob(filepath.Join(tmp, "identity-upgrade-work", "*", "run-*")); len(left) > 0 {
		t.Errorf("working copies left: %v", left)
	}
}
