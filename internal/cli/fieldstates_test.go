package cli

import (
	"bytes"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Runs that start from the states the field leaves, not from a fresh install: the release as
// the vendor's own plain helm upgrade to 3.0.0 left it (revision 2 failed on the postgres
// StatefulSet's immutable selector, after helm had patched Keycloak to 1.4), and a release
// whose deployed revision renders the target but does not run.

// failedVendorUpgrade installs the 1.3-like release and upgrades it the vendor's way, a plain
// helm upgrade to the 1.4-like chart, which fails on the immutable selector.
func failedVendorUpgrade(t *testing.T) *installed {
	t.Helper()
	w := install13(t)
	_, err := w.helm.Upgrade(t.Context(), "identity", helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "field is immutable") {
		t.Fatalf("the vendor's plain upgrade: %v, want the immutable selector", err)
	}
	if cur, err := w.helm.Current("identity"); err != nil || cur.Revision != 2 || cur.Status != "failed" {
		t.Fatalf("after the vendor's upgrade: revision %d %s, %v; want 2 failed", cur.Revision, cur.Status, err)
	}
	return w
}

// run runs an identity-upgrade subcommand against w's release and database.
func (w *installed) run(t *testing.T, cmd string, extra ...string) result {
	t.Helper()
	args := []string{cmd, "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
		"--db-host", w.db.Host, "--db-port", strconv.Itoa(w.db.Port), "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable"}
	env := map[string]string{"KUBECONFIG": w.kube.Kubeconfig, "PGPASSWORD": w.db.OwnerPassword}
	maps.Copy(env, w.env)
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), append(args, extra...), func(k string) string { return env[k] }, &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("identity-upgrade %s %s: exit %d\n%s%s", cmd, strings.Join(extra, " "), code, r.stdout, r.stderr)
	return r
}

// uid is the UID of a StatefulSet of w's release.
func (w *installed) uid(t *testing.T, name string) types.UID {
	t.Helper()
	sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sts.UID
}

// planLines are the lines of the plan that plan, a dry run and the run must agree on.
var planLines = []string{
	"  latest:  revision 2, failed, chart alfresco-identity-service-3.0.0",
	"  current: revision 1, deployed, chart alfresco-identity-service-2.1.0",
	"  on failure: roll back to revision 1",
	"~ StatefulSet/identity-postgresql-id  (immutable: spec.selector)",
	"Rollback hooks of revision 1 that a rollback would skip",
}

func TestFromAFailedVendorUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Run("plan, dry run and run agree, and the selector needs consent", func(t *testing.T) {
		t.Parallel()
		w := failedVendorUpgrade(t)
		postgres := w.uid(t, "identity-postgresql-id")
		upgrade := []string{"--backup-store", "path:" + w.stores, "--timeout", "90s", "--stability-window", "3s"}
		for _, r := range []result{
			w.run(t, "plan"),
			w.run(t, "upgrade", append(upgrade, "--dry-run")...),
			w.run(t, "upgrade", upgrade...),
		} {
			if r.code != rollout.ExitRefused {
				t.Errorf("exit %d, want %d (refused)", r.code, rollout.ExitRefused)
			}
			mustContain(t, r, append(planLines, "give --recreate-statefulsets orphan")...)
		}
		if got := w.uid(t, "identity-postgresql-id"); got != postgres {
			t.Error("the postgres StatefulSet was re-created without recreate-statefulsets: orphan")
		}
		if cur, err := w.helm.Current("identity"); err != nil || cur.Revision != 2 {
			t.Errorf("latest revision %d, %v; want 2, untouched", cur.Revision, err)
		}
		for _, r := range []result{
			w.run(t, "plan", "--recreate-statefulsets", "orphan"),
			w.upgrade(t.Context(), t, "--dry-run"),
		} {
			if r.code != rollout.ExitOK {
				t.Errorf("exit %d, want 0", r.code)
			}
			mustContain(t, r, planLines...)
		}
	})
	t.Run("a failed upgrade from there returns to revision 1 without its rollback hooks", func(t *testing.T) {
		t.Parallel()
		w := failedVendorUpgrade(t)
		r := w.upgrade(t.Context(), t, "--set", "fault=crashloop")
		if r.code != rollout.ExitRolledBack {
			t.Fatalf("exit %d, want %d (rolled back)\n%s", r.code, rollout.ExitRolledBack, r.stderr)
		}
		mustContain(t, r, "identity is back at revision 1's release")
		jobs, err := w.kube.Client.BatchV1().Jobs(w.kube.Namespace).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs.Items {
			t.Errorf("hook Job %s was created", j.Name)
		}
		w.endState(t, false)
	})
}

// TestNothingToDoOnlyWhenReady starts from a release whose deployed revision renders the
// target but crash-loops (an upgrade run with rollback: never, or one killed after helm's
// update): the same command again must not answer "nothing to do" with exit 0.
func TestNothingToDoOnlyWhenReady(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	if r := w.upgrade(t.Context(), t, "--set", "fault=crashloop", "--rollback", "never"); r.code == rollout.ExitOK {
		t.Fatalf("the crash-looping upgrade succeeded\n%s", r.stdout)
	}
	for _, r := range []result{
		w.upgrade(t.Context(), t, "--set", "fault=crashloop"),
		w.run(t, "plan", "--set", "fault=crashloop", "--recreate-statefulsets", "orphan"),
	} {
		if r.code != rollout.ExitRefused {
			t.Errorf("exit %d on a broken release that renders the target, want %d", r.code, rollout.ExitRefused)
		}
		mustContain(t, r, "is deployed and renders the target, but not ready: pod identity-id-keycloak-0",
			"Fix the cause, or upgrade to the chart version of a revision that worked")
		if strings.Contains(r.stdout, "helm rollback") {
			t.Error("advises a bare helm rollback")
		}
		if strings.Contains(r.stdout, "Nothing to do") {
			t.Error("said nothing to do")
		}
	}

	// Healthy again (the fault removed by a successful run), the same command is a noop.
	if r := w.upgrade(t.Context(), t, "--set", "fault="); r.code != rollout.ExitOK {
		t.Fatalf("the repairing upgrade: exit %d\n%s", r.code, r.stdout)
	}
	r := w.upgrade(t.Context(), t, "--set", "fault=")
	if r.code != rollout.ExitOK {
		t.Fatalf("exit %d, want 0", r.code)
	}
	mustContain(t, r, "Nothing to do: identity at revision")
}

// TestPlanListsDroppedValues installs the 1.3-like chart with a value that the 1.4-like chart
// no longer has (its rollback hooks): the plan names it among the values the upgrade would
// reuse and the target does not read, instead of dropping it silently.
func TestPlanListsDroppedValues(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end plan on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	values := map[string]any{"postgresql": w.db.ChartValues(), "hooks": map[string]any{"enabled": true}, "replicaCount": 1}
	if _, err := w.helm.Upgrade(t.Context(), "identity", helmrelease.UpgradeSpec{Chart: chart13, Values: yamlOf(t, values)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	r := w.run(t, "plan", "--recreate-statefulsets", "orphan")
	if r.code != rollout.ExitOK {
		t.Fatalf("exit %d", r.code)
	}
	mustContain(t, r, "Warnings:", "chart alfresco-identity-service-3.0.0 has no key for, so they would be dropped: hooks;")
}

// yamlOf writes values as the YAML of a values input.
func yamlOf(t *testing.T, values map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
