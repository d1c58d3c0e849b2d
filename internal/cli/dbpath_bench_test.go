package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestBenchDatabasePath measures, in one run on a cluster and a server of its own, what the
// platform's faults cost the database path (`make bench-dbpath`; BENCH_DB_MB, default 1024):
// a restore as a step through the port-forward with one stream break (the kwok controller,
// the node agent, killed half-way through the largest table) against the same restore without
// it, and the time from a restore's start to its error when another session holds a lock
// (db-lock-timeout at its default). It prints the figures; it fails only when a run does.
func TestBenchDatabasePath(t *testing.T) {
	if os.Getenv("BENCH_DBPATH") == "" {
		t.Skip("a benchmark: make bench-dbpath")
	}
	mb := 1024
	if v := os.Getenv("BENCH_DB_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("BENCH_DB_MB=%q is not a positive number of MiB", v)
		}
		mb = n
	}
	d := testworld.Dedicated(t)
	kube := d.Namespace(t)
	db := d.Database(t)
	db.ExecFileAsOwner(t, "../../testdata/sql/keycloak-11.sql")
	// Rows of about 560 bytes with their index: mb MiB in all, loaded in chunks that each fit
	// the test world's two-minute limit on one statement.
	rows := mb << 20 / 560
	db.Exec(t, "SET ROLE "+db.Owner+"; CREATE TABLE bulk (id int PRIMARY KEY, payload text)")
	begin := time.Now()
	for from := 1; from <= rows; from += 200000 {
		db.Exec(t, fmt.Sprintf("SET ROLE %s; INSERT INTO bulk SELECT g, repeat(md5(g::text), 16) FROM generate_series(%d, %d) g",
			db.Owner, from, min(from+199999, rows)))
	}
	size := strings.TrimSpace(db.Exec(t, "SELECT pg_size_pretty(pg_database_size(current_database()))"))
	t.Logf("generated %s (%d bulk rows) in %s", size, rows, time.Since(begin).Round(time.Second))

	w := installBundled(t, kube, db)
	forwarded := []string{"--db-port-forward", "auto", "--db-password-from", dbSecret, "--timeout", "1h"}
	direct := []string{"--db-host", db.Host, "--db-port", strconv.Itoa(db.Port), "--timeout", "1h"}
	directEnv := map[string]string{"KUBECONFIG": kube.Kubeconfig, "PGPASSWORD": db.OwnerPassword}
	// run times a command; with the forward, it also returns the CPU time the API server and
	// the kwok controller spent meanwhile.
	run := func(what string, env map[string]string, cmd string, args ...string) (result, time.Duration, time.Duration) {
		cpu0, err := d.Cluster.CPU(testworld.KubeAPIServer, testworld.KwokController)
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		r := w.inCluster(t, env, nil, cmd, args...)
		took := time.Since(begin)
		if r.code != rollout.ExitOK {
			t.Fatalf("%s: exit %d\n%s", what, r.code, r.stderr)
		}
		cpu1, err := d.Cluster.CPU(testworld.KubeAPIServer, testworld.KwokController)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s, control plane and node agent %.1f CPU-s", what, took.Round(10*time.Millisecond), (cpu1 - cpu0).Seconds())
		return r, took, cpu1 - cpu0
	}
	_, backupDirect, _ := run("backup, direct", directEnv, "backup", direct...)
	r, backupForwarded, backupCPU := run("backup through the port-forward", nil, "backup", forwarded...)
	bundle := lastLine(r.stdout)
	restoreArgs := func(via []string) []string {
		return append([]string{"--from", bundle, "--release-name", "identity"}, via...)
	}
	restore := restoreArgs(forwarded)

	_, restoreDirect, _ := run("restore, direct", directEnv, "restore", restoreArgs(direct)...)
	_, clean, restoreCPU := run("restore through the port-forward", nil, "restore", restore...)
	// The break comes half-way through the bulk table's COPY, most of the restore.
	fired := atCopy(t, db, copyingIn, func() error {
		time.Sleep(clean / 2)
		return d.Cluster.Restart(testworld.KwokController, time.Second)
	})
	_, broken, _ := run("the same restore, its stream broken once half-way (kwok controller killed, back after 1s)", nil, "restore", restore...)
	if !fired() {
		t.Fatal("the restore ended before the break")
	}
	_, again, _ := run("restore through the port-forward, again", nil, "restore", restore...)
	base := (clean + again) / 2
	gib := float64(mb) / 1024

	pid := db.HoldLock(t, false, "PostgreSQL JDBC Driver", "realm", "ACCESS SHARE")
	begin = time.Now()
	r = w.inCluster(t, nil, nil, "restore", restore...)
	toError := time.Since(begin)
	if r.code != rollout.ExitRolledBack || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", pid)) {
		t.Fatalf("restore against a foreign lock: exit %d\n%s", r.code, r.stderr)
	}

	t.Logf("\n== database path, %s database (%d MiB generated), one run", size, mb)
	t.Logf("backup:  direct %s, through the port-forward %s = %.2f× direct; control plane and node %.1f CPU-s (%.1f per GiB)",
		backupDirect.Round(10*time.Millisecond), backupForwarded.Round(10*time.Millisecond), backupForwarded.Seconds()/backupDirect.Seconds(),
		backupCPU.Seconds(), backupCPU.Seconds()/gib)
	t.Logf("restore: direct %s, through the port-forward %s (mean of 2) = %.2f× direct; control plane and node %.1f CPU-s (%.1f per GiB)",
		restoreDirect.Round(10*time.Millisecond), base.Round(10*time.Millisecond), base.Seconds()/restoreDirect.Seconds(),
		restoreCPU.Seconds(), restoreCPU.Seconds()/gib)
	t.Logf("restore with one stream break half-way, retried: %s = %.2f× the same restore without it (db-retry-backoff 5s)",
		broken.Round(10*time.Millisecond), broken.Seconds()/base.Seconds())
	t.Logf("another session holding a lock: restore start to the error naming it: %s (db-lock-timeout 30s)", toError.Round(10*time.Millisecond))
}
