// Package rehearsal is the local upgrade rehearsal behind `make rehearsal`: it starts the test
// world (a PostgreSQL 11 server, the identity service's own major, and a simulated cluster),
// installs the Identity Service 1.3-like release with its bundled PostgreSQL, whose pod's port
// 5432 the simulated cluster forwards to a seeded Keycloak 11 database on that server, and runs
// identity-upgrade against it as a user of the bundled chart would: the database reached through
// the API server (db-port-forward auto), its password read from the release's Secret. It shows
// each step's output: the plan (the vendor's way is refused), the upgrade to the 1.4-like chart,
// and an upgrade to a broken variant that is rolled back automatically, database included.
//
// The simulated cluster runs no Keycloak, so the rehearsal plays Keycloak's part towards the
// database while each upgrade runs: the new Keycloak 12 migrates the schema when its pod is
// Ready, and the broken one changes rows in place before it crashes, so that the broken
// upgrade's rollback has a database to restore. After it, the rehearsal checks that the
// database holds exactly what it held before the broken upgrade.
package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// Release and Namespace name the rehearsal's release; Database is its database.
const (
	Release   = "identity"
	Namespace = "identity"
	Database  = "keycloak"
)

// dbSecret is where the test charts keep the database password: the Secret that Keycloak and
// the bundled PostgreSQL both read.
const dbSecret = "secret/identity-id-keycloak-db:DB_PASSWORD"

// PostgresMajor is the major of the rehearsal's PostgreSQL server: that of the PostgreSQL the
// identity service's charts bundle (postgres 11.7).
const PostgresMajor = 11

// Options configures a rehearsal.
type Options struct {
	// Binary is the identity-upgrade binary to rehearse with.
	Binary string
	// Root is the repository root (for testdata/).
	Root string
	// Out receives the rehearsal's narration and the binary's output.
	Out io.Writer
	// BackupDir is the backup store (default: a temporary directory, removed at the end).
	BackupDir string
	// Keep leaves the world running until ctx is done, for exploring by hand.
	Keep bool
	// DBHost installs the release with an external database, the server's address, and gives
	// identity-upgrade that address (db-host, db-port) and the password (PGPASSWORD), instead of
	// the bundled database reached through a port-forward.
	DBHost bool
}

// Step is one identity-upgrade run of the rehearsal and how it ended.
type Step struct {
	Title    string
	Args     []string
	ExitCode int
	// Output is what the binary printed, stdout and stderr.
	Output string
	// Took is how long the run took.
	Took time.Duration
	// Keycloak says what the simulated Keycloak did to the database during the run ("": it
	// had no part in it).
	Keycloak string

	keycloak *keycloak
	// clone plays the simulated Keycloak on the clone (its namespace, its database), not on
	// the release.
	clone bool
}

// Result is what the rehearsal ran and what it found.
type Result struct {
	Steps []Step
	// BeforeBroken and AfterBroken are the database's content before the broken upgrade and
	// after its rollback; the rehearsal fails unless they are equal.
	BeforeBroken, AfterBroken testworld.Digest
	// Forwarded is how many connections to the database went through the cluster's
	// port-forward (0 with DBHost).
	Forwarded int
}

// The broken upgrade's report must show these steps of its recovery, each ok.
var (
	restoredLine = regexp.MustCompile(`(?m)^\s*restore database\s+\S+\s+ok\s+restored `)
	verifiedLine = regexp.MustCompile(`(?m)^\s*verify database\s+\S+\s+ok\b`)
)

// Run performs the rehearsal. It fails when the broken upgrade did not end rolled back (exit 1)
// with the database restored, verified, and equal to what it was before that upgrade.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	con := &console{w: opts.Out}
	say := con.say

	say("starting PostgreSQL %d, the identity service's own major (local, 127.0.0.1)", PostgresMajor)
	pg, err := testworld.StartPostgresServerMajor(PostgresMajor)
	if err != nil {
		return res, err
	}
	defer stop(&err, "postgres", pg.Stop)
	db, err := pg.CreateDatabase(ctx, Database)
	if err != nil {
		return res, err
	}
	seed, err := os.ReadFile(filepath.Join(opts.Root, "testdata", "sql", "keycloak-11.sql"))
	if err != nil {
		return res, err
	}
	if _, err := db.Run(ctx, "SET ROLE "+db.Owner+";\n"+string(seed)); err != nil {
		return res, fmt.Errorf("seed the Keycloak 11 database: %w", err)
	}
	state, err := schemaState(ctx, db)
	if err != nil {
		return res, err
	}
	say("seeded database %q with a Keycloak 11 (Identity Service 1.3) schema, owned by %q: %s", db.Database, db.Owner, state)

	say("starting the simulated cluster (first run builds the control plane: minutes); a port-forward to port %d\n"+
		"    of any of its pods reaches this PostgreSQL %d server", testworld.PodPostgresPort, PostgresMajor)
	cluster, err := testworld.StartClusterForPostgres(pg)
	if err != nil {
		return res, err
	}
	defer stop(&err, "cluster", cluster.Stop)
	kube, err := cluster.CreateNamespace(ctx, Namespace)
	if err != nil {
		return res, err
	}

	helm, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: Namespace})
	if err != nil {
		return res, err
	}
	chart13 := filepath.Join(opts.Root, "testdata", "charts", "identity", "2.1.0")
	// The bundled PostgreSQL (postgresql.host empty) is the chart's default; its pod is the
	// rehearsal's database through the port-forward. The Secret holds the owner's password.
	values := map[string]any{"host": "", "port": testworld.PodPostgresPort, "database": db.Database, "username": db.Owner, "password": db.OwnerPassword}
	if opts.DBHost {
		values = db.ChartValues()
	}
	rel, err := helm.Install(ctx, Release, chart13, map[string]any{"postgresql": values}, 2*time.Minute)
	if err != nil {
		return res, err
	}
	say("installed release %q: revision %d, chart %s-%s (Identity Service %s), %s", rel.Name, rel.Revision, rel.ChartName, rel.ChartVersion, rel.AppVersion, rel.Status)
	// The 1.4-like chart pulls its image with quay-registry-secret, as the real one does: the
	// vendor has users create it before the upgrade.
	if err := kube.CreatePullSecret(ctx, "quay-registry-secret"); err != nil {
		return res, err
	}
	say("created the image pull Secret quay-registry-secret that the 1.4 chart's pods reference")

	chart14 := filepath.Join(opts.Root, "testdata", "charts", "identity", "3.0.0")
	common := []string{"--release-name", Release, "--namespace", Namespace, "--chart", chart14}
	// The kubeconfig, and with db-host the password, go through the environment, never the
	// arguments.
	env := append(os.Environ(), "KUBECONFIG="+kube.Kubeconfig)
	if opts.DBHost {
		say("identity-upgrade connects to the database directly (-db-host): %s:%d, the password in PGPASSWORD", db.Host, db.Port)
		common = append(common, "--db-host", db.Host, "--db-port", strconv.Itoa(db.Port))
		env = append(env, "PGPASSWORD="+db.OwnerPassword)
	} else {
		say("the release uses its bundled PostgreSQL (pod %s-postgresql-id-0), so identity-upgrade reaches the database\n"+
			"    through the API server, as from outside the cluster: --db-port-forward auto (a port-forward to the release's\n"+
			"    PostgreSQL), --db-password-from %s; no db-host, no password given", Release, dbSecret)
		common = append(common, "--db-port-forward", "auto", "--db-password-from", dbSecret)
	}
	common = append(common, "--db-name", db.Database, "--db-user", db.Owner, "--db-sslmode", "disable")
	forwardedBefore := kube.PostgresForwards()
	backups := opts.BackupDir
	if backups == "" {
		if backups, err = os.MkdirTemp("", "identity-upgrade-rehearsal-backups-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(backups)
	}
	upgrade := append([]string{"upgrade", "--recreate-statefulsets", "orphan", "--backup-store", "path:" + backups,
		"--stability-window", "5s", "--timeout", "2m"}, common...)
	kc12, broken := keycloak12(opts.Root), brokenKeycloak12()
	var steps []Step
	var clone testworld.Clone
	if !opts.DBHost {
		// The clone's PostgreSQL is a database of its own on a second server: the test world
		// sends the clone namespace's port-forwards there.
		var release func() error
		if clone, release, err = cluster.Clone(ctx, db); err != nil {
			return res, err
		}
		defer stop(&err, "the clone", release)
		steps = append(steps, Step{Title: "rehearse the upgrade on a clone in namespace " + clone.Namespace + " before any downtime: a consistent\n" +
			"    backup with Keycloak serving, the 1.4 chart installed there under the release's name, the backup restored into\n" +
			"    the clone's own PostgreSQL; the simulated Keycloak 12 migrates the clone; production untouched",
			Args:     append([]string{"rehearse", "--rehearsal-namespace", clone.Namespace, "--stability-window", "5s", "--timeout", "2m"}, common...),
			keycloak: &kc12, clone: true})
	}
	brokenStep := len(steps) + 3
	steps = append(steps, []Step{
		{Title: "plan the upgrade to Identity Service 1.4 as the vendor describes it (the postgres selector trap)", Args: append([]string{"plan"}, common...)},
		{Title: "plan it again, letting identity-upgrade re-create the postgres StatefulSet", Args: append([]string{"plan", "--recreate-statefulsets", "orphan"}, common...)},
		{Title: "upgrade to Identity Service 1.4: backup, orphan re-create, upgrade, readiness with a stability window;\n" +
			"    the simulated Keycloak 12 migrates the schema when its pod is Ready", Args: upgrade, keycloak: &kc12},
		{Title: "upgrade again to a broken 1.4 whose Keycloak crashes 2 s after it is Ready (helm --atomic calls this a success);\n" +
			"    the simulated broken Keycloak changes rows in place while it is up: automatic rollback, database restored from the backup",
			Args: append(slices.Clone(upgrade), "--set", "fault=crash-after-ready", "--set", "faultDelay=2s"), keycloak: &broken},
	}...)
	for i, s := range steps {
		if i == brokenStep {
			if res.BeforeBroken, err = db.ContentDigest(ctx, true); err != nil {
				return res, err
			}
			say("the database before the broken upgrade: %d tables, content digest %s", res.BeforeBroken.Tables(), res.BeforeBroken.Short())
		}
		var prodBefore testworld.Digest
		if s.clone {
			if prodBefore, err = db.ContentDigest(ctx, true); err != nil {
				return res, err
			}
		}
		say("%s\n    identity-upgrade %s", s.Title, strings.Join(s.Args, " "))
		var keycloakDone func() (string, error)
		if s.keycloak != nil {
			ns, kdb := Namespace, db
			if s.clone {
				ns, kdb = clone.Namespace, clone.Database
			}
			if keycloakDone, err = s.keycloak.watch(ctx, kube.Client, ns, kdb, say); err != nil {
				return res, err
			}
		}
		out := con.output()
		cmd := exec.CommandContext(ctx, opts.Binary, s.Args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out
		began := time.Now()
		runErr := cmd.Run()
		s.Took = time.Since(began)
		out.flush()
		s.Output = out.all.String()
		var exit *exec.ExitError
		switch {
		case errors.As(runErr, &exit):
			s.ExitCode = exit.ExitCode()
		case runErr != nil:
			if keycloakDone != nil {
				keycloakDone()
			}
			return res, fmt.Errorf("run %s: %w", opts.Binary, runErr)
		}
		say("exit code %d after %s", s.ExitCode, s.Took.Round(100*time.Millisecond))
		var kcErr error
		if keycloakDone != nil {
			s.Keycloak, kcErr = keycloakDone()
		}
		res.Steps = append(res.Steps, s)
		if kcErr != nil {
			return res, fmt.Errorf("step %d (%s): %w", i+1, s.Args[0], kcErr)
		}
		if s.clone {
			after, err := db.ContentDigest(ctx, true)
			if err != nil {
				return res, err
			}
			if s.ExitCode != 0 || after.Sum != prodBefore.Sum {
				return res, fmt.Errorf("the rehearsal on a clone: exit %d (want 0); production's database %s, was %s", s.ExitCode, after.Short(), prodBefore.Short())
			}
			say("checked: the rehearsal passed, and production's database is as it was (content digest %s)", after.Short())
		}
	}

	if res.AfterBroken, err = db.ContentDigest(ctx, true); err != nil {
		return res, err
	}
	res.Forwarded = kube.PostgresForwards() - forwardedBefore
	if err := checkBroken(res); err != nil {
		return res, err
	}
	if !opts.DBHost && res.Forwarded == 0 {
		return res, errors.New("no connection to the database went through the cluster's port-forward")
	}
	say("checked: the broken upgrade exited 1, its report says the database was restored and verified,\n"+
		"    and the database equals what it was before that upgrade: %d tables, content digest %s", res.AfterBroken.Tables(), res.AfterBroken.Short())
	if !opts.DBHost {
		say("identity-upgrade's %d connections to the database all went through the API server's port-forward", res.Forwarded)
	}

	if opts.Keep {
		say("the world stays up until Ctrl-C:\n    export KUBECONFIG=%s\n    psql %q", kube.Kubeconfig, db.URL())
		<-ctx.Done()
	}
	return res, nil
}

// checkBroken checks the end of the broken upgrade: exit 1, its recovery restored the database
// and verified it, and the database holds what it held before that upgrade.
func checkBroken(res Result) error {
	s := res.Steps[len(res.Steps)-1]
	var problems []string
	if s.ExitCode != 1 {
		problems = append(problems, fmt.Sprintf("the broken upgrade exited %d, not 1 (rolled back)", s.ExitCode))
	}
	if !restoredLine.MatchString(s.Output) {
		problems = append(problems, `its report has no "restore database ... ok restored" step`)
	}
	if !verifiedLine.MatchString(s.Output) {
		problems = append(problems, `its report has no "verify database ... ok" step`)
	}
	if res.AfterBroken.Sum != res.BeforeBroken.Sum {
		diff := res.BeforeBroken.Diff(res.AfterBroken)
		problems = append(problems, fmt.Sprintf("the database differs from what it was before the broken upgrade (digest %s, was %s):\n      %s",
			res.AfterBroken.Short(), res.BeforeBroken.Short(), strings.Join(diff, "\n      ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the broken upgrade's rollback:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// stop runs a teardown and keeps the first error.
func stop(err *error, what string, fn func() error) {
	if e := fn(); e != nil && *err == nil {
		*err = fmt.Errorf("stop %s: %w", what, e)
	}
}
