package cli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The database path under the platform's faults: the stream of a restore or a backup broken
// mid-way (the kwok controller, which serves port-forward as a kubelet does, killed; the API
// server killed; PostgreSQL restarted), and a foreign session holding a lock. The runs reach
// the release's own PostgreSQL only through the port-forward, as a GitHub-hosted runner
// does. Killing a component of the cluster or restarting the server would break the other
// tests of the binary: these run one after another on a cluster and a server of their own.

// bulkRows is the size of the table that makes a dump's COPY last long enough to be broken
// mid-way (about 40 MB).
const bulkRows = 80000

// dbFlags are the database-path inputs of every faulted run: retries sooner than the default,
// and a short lock timeout.
var dbFlags = []string{"--db-retry-backoff", "1s", "--db-lock-timeout", "4s"}

// installDedicated installs the 1.3-like release with its bundled PostgreSQL in a namespace of
// d's cluster, its database on d's server, seeded with the Keycloak 11 fixture and a bulk table.
func installDedicated(t *testing.T, d *testworld.DedicatedWorld) *installed {
	t.Helper()
	kube := d.Namespace(t)
	db := d.Database(t)
	db.ExecFileAsOwner(t, "../../testdata/sql/keycloak-11.sql")
	db.Exec(t, fmt.Sprintf(`SET ROLE %s; CREATE TABLE bulk (id int PRIMARY KEY, payload text);
		INSERT INTO bulk SELECT g, repeat(md5(g::text), 16) FROM generate_series(1, %d) g`, db.Owner, bulkRows))
	w := installBundled(t, kube, db)
	w.before = dbContent(t, db)
	return w
}

// copying is the query of a COPY of the bulk table: into the database (a restore) or out of
// it (pg_dump).
const (
	copyingIn  = `COPY public.bulk % FROM stdin%`
	copyingOut = `COPY public.bulk % TO stdout%`
)

// atCopy calls fault once, as soon as a session of db runs a COPY matching pattern, and
// returns a function that waits for the fault to have run and reports whether it did.
func atCopy(t *testing.T, db testworld.Database, pattern string, fault func() error) (wait func() bool) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), db.SuperURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan bool, 1)
	go func() {
		defer conn.Close(context.Background())
		for {
			var n int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE $2`,
				db.Database, pattern).Scan(&n)
			if ctx.Err() != nil {
				done <- false
				return
			}
			if err == nil && n > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		begin := time.Now()
		if err := fault(); err != nil {
			t.Errorf("the fault: %v", err)
		}
		t.Logf("fault injected mid-COPY and recovered from in %s", time.Since(begin).Round(time.Millisecond))
		done <- true
	}()
	var once sync.Once
	var fired bool
	return func() bool {
		once.Do(func() {
			cancel()
			fired = <-done
		})
		return fired
	}
}

// noSessionsLeft checks that no session of identity-upgrade is left on the server.
func noSessionsLeft(t *testing.T, srv *testworld.PostgresServer) {
	t.Helper()
	sessions, err := srv.Sessions(t.Context(), "identity-upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) > 0 {
		t.Errorf("sessions of identity-upgrade left on the server: %v", sessions)
	}
}

// lastLine is the last line of a command's stdout: backup's bundle location.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestDatabasePathFaults: each fault, mid-stream, on a restore as a step, a backup as a step
// and the restore of an upgrade's rollback. A broken stream is retried: the run ends with the
// database equal to the backup (full content digest), or the backup restoring equal. A
// foreign lock fails the run within db-lock-timeout, naming the blocking session and the fix.
// No session of the run is left on the server afterwards.
func TestDatabasePathFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("faults of the platform on a dedicated simulated cluster")
	}
	// Its faults hit its own cluster and server only: it runs beside the others.
	t.Parallel()
	d := testworld.Dedicated(t)
	auto := append([]string{"--db-port-forward", "auto", "--db-password-from", dbSecret}, dbFlags...)
	// restore (given no release-name by inCluster) needs it for auto.
	restore := func(bundle string, extra ...string) []string {
		return append(append([]string{"--from", bundle, "--release-name", "identity"}, auto...), extra...)
	}

	faults := []struct {
		name  string
		fault func() error
		// broke is what the forward logs of the stream the fault broke.
		broke string
	}{
		{"kwok controller killed", func() error { return d.Cluster.Restart(testworld.KwokController, time.Second) },
			`msg="port-forward stream broken" pod=identity-postgresql-id-0`},
		{"kube-apiserver killed", func() error { return d.Cluster.Restart(testworld.KubeAPIServer, time.Second) },
			`msg="port-forward stream broken" pod=identity-postgresql-id-0`},
		// The server ends its sessions; the way to it need not say so (kwok does not close
		// the stream when the pod's side ends): the run's watch of its own sessions does.
		{"PostgreSQL restarted", d.Server.Restart, ""},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Run("restore", func(t *testing.T) {
				w := installDedicated(t, d)
				r := w.inCluster(t, nil, nil, "backup", auto...)
				if r.code != rollout.ExitOK {
					t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
				}
				w.db.Exec(t, "SET ROLE "+w.db.Owner+"; UPDATE realm SET not_before = not_before + 1; DELETE FROM bulk WHERE id % 2 = 0")
				fired := atCopy(t, w.db, copyingIn, f.fault)
				r = w.inCluster(t, nil, nil, "restore", restore(lastLine(r.stdout))...)
				if !fired() {
					t.Fatal("the restore ended before the fault")
				}
				if r.code != rollout.ExitOK {
					t.Fatalf("restore: exit %d\n%s", r.code, r.stderr)
				}
				if dbContent(t, w.db) != w.before {
					t.Error("the restored database differs from the one backed up")
				}
				wantRetry(t, r.stderr, "restore")
				wantBroke(t, r.stderr, f.broke)
				noSessionsLeft(t, d.Server)
			})
			t.Run("backup", func(t *testing.T) {
				w := installDedicated(t, d)
				fired := atCopy(t, w.db, copyingOut, f.fault)
				r := w.inCluster(t, nil, nil, "backup", auto...)
				if !fired() {
					t.Fatal("the backup ended before the fault")
				}
				if r.code != rollout.ExitOK {
					t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
				}
				wantRetry(t, r.stderr, "backup")
				wantBroke(t, r.stderr, f.broke)
				noSessionsLeft(t, d.Server)
				// The bundle is whole: restored over a changed database, it gives the original.
				w.db.Exec(t, "SET ROLE "+w.db.Owner+"; DELETE FROM bulk WHERE id % 3 = 0")
				if r := w.inCluster(t, nil, nil, "restore", restore(lastLine(r.stdout))...); r.code != rollout.ExitOK {
					t.Fatalf("restore of the backup taken under the fault: exit %d\n%s", r.code, r.stderr)
				}
				if dbContent(t, w.db) != w.before {
					t.Error("the backup taken under the fault does not restore the database backed up")
				}
			})
			t.Run("rollback's restore", func(t *testing.T) {
				w := installDedicated(t, d)
				fired := atCopy(t, w.db, copyingIn, f.fault)
				r := w.inCluster(t, nil, nil, "upgrade", append([]string{"--set", "fault=crashloop", "--restore-database", "always",
					"--timeout", "90s", "--stability-window", "2s"}, auto...)...)
				if !fired() {
					t.Fatal("the upgrade ended before the fault")
				}
				if r.code != rollout.ExitRolledBack {
					t.Fatalf("upgrade: exit %d, want %d\n%s\n%s", r.code, rollout.ExitRolledBack, r.stdout, r.stderr)
				}
				mustContain(t, r, "the database was restored from the backup")
				if dbContent(t, w.db) != w.before {
					t.Error("the database after the rollback differs from the one backed up")
				}
				wantRetry(t, r.stderr, "restore")
				noSessionsLeft(t, d.Server)
			})
		})
	}

	t.Run("foreign lock", func(t *testing.T) {
		const lockTimeout = 4 * time.Second
		t.Run("restore", func(t *testing.T) {
			w := installDedicated(t, d)
			r := w.inCluster(t, nil, nil, "backup", auto...)
			if r.code != rollout.ExitOK {
				t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
			}
			bundle := lastLine(r.stdout)
			w.db.Exec(t, "SET ROLE "+w.db.Owner+"; UPDATE realm SET not_before = not_before + 1")
			changed := dbContent(t, w.db)
			pid := w.db.HoldLock(t, false, "PostgreSQL JDBC Driver", "realm", "ACCESS SHARE")
			begin := time.Now()
			r = w.inCluster(t, nil, nil, "restore", restore(bundle, "--timeout", "2m")...)
			took := time.Since(begin)
			t.Logf("restore against a foreign lock failed after %s (db-lock-timeout %s)", took.Round(10*time.Millisecond), lockTimeout)
			wantBlocker(t, r, pid, rollout.ExitRolledBack)
			if took > lockTimeout+20*time.Second {
				t.Errorf("the restore took %s against a lock timeout of %s", took, lockTimeout)
			}
			if dbContent(t, w.db) != changed {
				t.Error("the failed restore changed the database")
			}
			noSessionsLeft(t, d.Server)
		})
		t.Run("backup", func(t *testing.T) {
			w := installDedicated(t, d)
			pid := w.db.HoldLock(t, false, "PostgreSQL JDBC Driver", "realm", "ACCESS EXCLUSIVE")
			begin := time.Now()
			r := w.inCluster(t, nil, nil, "backup", append([]string{"--timeout", "2m"}, auto...)...)
			took := time.Since(begin)
			t.Logf("backup against a foreign lock failed after %s", took.Round(10*time.Millisecond))
			wantBlocker(t, r, pid, rollout.ExitRolledBack)
			if took > lockTimeout+20*time.Second {
				t.Errorf("the backup took %s against a lock timeout of %s", took, lockTimeout)
			}
			if entries, _ := os.ReadDir(w.stores); len(entries) != 0 {
				t.Errorf("a failed backup left %v in its store", entries)
			}
			noSessionsLeft(t, d.Server)
		})
		t.Run("rollback's restore", func(t *testing.T) {
			w := installDedicated(t, d)
			pid := w.db.HoldLock(t, false, "PostgreSQL JDBC Driver", "realm", "ACCESS SHARE")
			r := w.inCluster(t, nil, nil, "upgrade", append([]string{"--set", "fault=crashloop", "--restore-database", "always",
				"--timeout", "90s", "--stability-window", "2s"}, auto...)...)
			wantBlocker(t, r, pid, rollout.ExitNeedsHuman)
			if dbContent(t, w.db) != w.before {
				t.Error("the database changed")
			}
			noSessionsLeft(t, d.Server)
		})
	})
}

// wantRetry checks that a run's log says what broke and that it tried again.
func wantRetry(t *testing.T, log, what string) {
	t.Helper()
	re := regexp.MustCompile(what + ` attempt 1/\d+ failed.*retrying`)
	if !re.MatchString(log) {
		t.Errorf("the log does not say the %s was retried:\n%s", what, log)
	}
}

// wantBroke checks that the forward logged the stream the fault broke.
func wantBroke(t *testing.T, log, want string) {
	t.Helper()
	if want != "" && !strings.Contains(log, want) {
		t.Errorf("the log lacks %q:\n%s", want, log)
	}
}

// wantBlocker checks that a run failed with code, not refused, naming the blocking session
// (pid, user, application) and the fix.
func wantBlocker(t *testing.T, r result, pid, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\n%s\n%s", r.code, code, r.stdout, r.stderr)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{fmt.Sprintf("pid %d", pid), "user keycloak", `application "PostgreSQL JDBC Driver"`, "idle in transaction", "quiesce"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not name %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "result: refused") {
		t.Error("a lock held by another session is reported as refused, which means bad input")
	}
}
