package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// TestAutoForwardAfterFailedHelmCommands: db-port-forward auto from the states a failed helm
// command leaves the bundled PostgreSQL in. A plain helm upgrade 2.1.0 → 3.0.0 patches the
// Service to 3.0.0's selector, then fails on the StatefulSet's immutable one: the pod keeps
// 2.1.0's labels and the Service selects nothing. A plain helm rollback 3.0.0 → 2.1.0 leaves
// the reverse. The database pod is found through its StatefulSet, not through whichever
// Service selects it now, and the log says which pod.
func TestAutoForwardAfterFailedHelmCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs on the simulated cluster")
	}
	auto := []string{"--db-port-forward", "auto", "--db-password-from", dbSecret}
	// reached checks that the forward found the pod at once and, when the command connects
	// to the database, that it reached it, naming how it chose it.
	reached := func(t *testing.T, r result, connects bool) {
		t.Helper()
		wants := []string{
			`msg="db-port-forward auto: the release's PostgreSQL" target=statefulset/identity-postgresql-id`,
			`msg="port-forward listening"`, `pod=identity-postgresql-id-0`,
		}
		if connects {
			wants = append(wants, `msg="port-forward reaches pod" pod=identity-postgresql-id-0`, `chosen="selected by statefulset/identity-postgresql-id"`)
		}
		for _, want := range wants {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the log lacks %q:\n%s", want, r.stderr)
			}
		}
	}

	t.Run("after the vendor's failed plain upgrade", func(t *testing.T) {
		t.Parallel()
		w := installInCluster(t)
		_, err := w.helm.Upgrade(t.Context(), "identity", helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true}, time.Minute)
		if err == nil || !strings.Contains(err.Error(), "field is immutable") {
			t.Fatalf("the vendor's plain upgrade: %v, want the immutable selector", err)
		}
		begin := time.Now()
		r := w.inCluster(t, nil, nil, "plan", auto...)
		if r.code != rollout.ExitOK {
			t.Fatalf("plan: exit %d after %s\n%s\n%s", r.code, time.Since(begin).Round(time.Second), r.stdout, r.stderr)
		}
		reached(t, r, true)
		r = w.inCluster(t, nil, nil, "upgrade", append(auto, "--timeout", "90s", "--stability-window", "3s")...)
		if r.code != rollout.ExitOK {
			t.Fatalf("upgrade: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		reached(t, r, true)
		if got := dbContent(t, w.db); got != w.before {
			t.Error("the upgrade changed the database")
		}
	})

	t.Run("after a failed plain rollback", func(t *testing.T) {
		t.Parallel()
		w := installInCluster(t)
		if r := w.inCluster(t, nil, nil, "upgrade", append(auto, "--timeout", "90s", "--stability-window", "3s")...); r.code != rollout.ExitOK {
			t.Fatalf("upgrade: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		_, err := w.helm.Rollback(t.Context(), "identity", 1, rollout.RollbackOptions{DisableHooks: true, Timeout: time.Minute})
		if err == nil || !strings.Contains(err.Error(), "field is immutable") {
			t.Fatalf("the plain rollback: %v, want the immutable selector", err)
		}
		// The rollback left no deployed revision, which plan refuses: recover (nothing to
		// complete) and a backup reach the database.
		for _, cmd := range []string{"recover", "backup"} {
			begin := time.Now()
			r := w.inCluster(t, nil, nil, cmd, auto...)
			if r.code != rollout.ExitOK {
				t.Fatalf("%s: exit %d after %s\n%s\n%s", cmd, r.code, time.Since(begin).Round(time.Second), r.stdout, r.stderr)
			}
			reached(t, r, cmd == "backup")
		}
	})
}
