// Package rehearsal is the local upgrade rehearsal behind `make rehearsal`: it starts the test
// world (a PostgreSQL server and a simulated cluster), installs the Identity Service 1.3-like
// release against a seeded Keycloak 11 database, and runs identity-upgrade against it as a
// user would, showing each step's output: the plan (the vendor's way is refused), the upgrade
// to the 1.4-like chart, and an upgrade to a broken variant that is rolled back automatically.
package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// Release and Namespace name the rehearsal's release.
const (
	Release   = "identity"
	Namespace = "identity"
	Database  = "keycloak"
)

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
}

// Step is one identity-upgrade run of the rehearsal and how it ended.
type Step struct {
	Title    string
	Args     []string
	ExitCode int
	Output   string
}

// Run performs the rehearsal and returns the steps it ran.
func Run(ctx context.Context, opts Options) (steps []Step, err error) {
	say := func(format string, args ...any) { fmt.Fprintf(opts.Out, "==> "+format+"\n", args...) }

	say("starting PostgreSQL (local, 127.0.0.1)")
	pg, err := testworld.StartPostgresServer()
	if err != nil {
		return nil, err
	}
	defer stop(&err, "postgres", pg.Stop)
	db, err := pg.CreateDatabase(ctx, Database)
	if err != nil {
		return nil, err
	}
	seed, err := os.ReadFile(filepath.Join(opts.Root, "testdata", "sql", "keycloak-11.sql"))
	if err != nil {
		return nil, err
	}
	if _, err := db.Run(ctx, "SET ROLE "+db.Owner+";\n"+string(seed)); err != nil {
		return nil, fmt.Errorf("seed the Keycloak 11 database: %w", err)
	}
	say("seeded database %q with a Keycloak 11 (Identity Service 1.3) schema, owned by %q", db.Database, db.Owner)

	say("starting the simulated cluster (first run builds the control plane: minutes)")
	cluster, err := testworld.StartCluster()
	if err != nil {
		return nil, err
	}
	defer stop(&err, "cluster", cluster.Stop)
	kube, err := cluster.CreateNamespace(ctx, Namespace)
	if err != nil {
		return nil, err
	}

	helm, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: Namespace})
	if err != nil {
		return nil, err
	}
	chart13 := filepath.Join(opts.Root, "testdata", "charts", "identity", "2.1.0")
	rel, err := helm.Install(ctx, Release, chart13, map[string]any{"postgresql": db.ChartValues()}, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	say("installed release %q: revision %d, chart %s-%s (Identity Service %s), %s", rel.Name, rel.Revision, rel.ChartName, rel.ChartVersion, rel.AppVersion, rel.Status)

	chart14 := filepath.Join(opts.Root, "testdata", "charts", "identity", "3.0.0")
	common := []string{
		"--release-name", Release, "--namespace", Namespace, "--chart", chart14,
		"--db-host", db.Host, "--db-port", strconv.Itoa(db.Port), "--db-name", db.Database,
		"--db-user", db.Owner, "--db-sslmode", "disable",
	}
	backups := opts.BackupDir
	if backups == "" {
		if backups, err = os.MkdirTemp("", "identity-upgrade-rehearsal-backups-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(backups)
	}
	upgrade := append([]string{"upgrade", "--recreate-statefulsets", "orphan", "--backup-store", "path:" + backups,
		"--stability-window", "5s", "--timeout", "2m"}, common...)
	// The password and the kubeconfig go through the environment, never the arguments.
	env := append(os.Environ(), "KUBECONFIG="+kube.Kubeconfig, "PGPASSWORD="+db.OwnerPassword)
	for _, s := range []Step{
		{Title: "plan the upgrade to Identity Service 1.4 as the vendor describes it (the postgres selector trap)", Args: append([]string{"plan"}, common...)},
		{Title: "plan it again, letting identity-upgrade re-create the postgres StatefulSet", Args: append([]string{"plan", "--recreate-statefulsets", "orphan"}, common...)},
		{Title: "upgrade to Identity Service 1.4: backup, orphan re-create, upgrade, readiness with a stability window", Args: upgrade},
		{Title: "upgrade again to a broken 1.4 whose Keycloak crashes 2 s after it is Ready (helm --atomic calls this a success): automatic rollback",
			Args: append(slices.Clone(upgrade), "--set", "fault=crash-after-ready", "--set", "faultDelay=2s")},
	} {
		say("%s\n    identity-upgrade %s", s.Title, strings.Join(s.Args, " "))
		cmd := exec.CommandContext(ctx, opts.Binary, s.Args...)
		cmd.Env = env
		out, runErr := cmd.CombinedOutput()
		s.Output = string(out)
		var exit *exec.ExitError
		switch {
		case errors.As(runErr, &exit):
			s.ExitCode = exit.ExitCode()
		case runErr != nil:
			return steps, fmt.Errorf("run %s: %w", opts.Binary, runErr)
		}
		opts.Out.Write(out)
		say("exit code %d", s.ExitCode)
		steps = append(steps, s)
	}

	if opts.Keep {
		say("the world stays up until Ctrl-C:\n    export KUBECONFIG=%s\n    psql %q", kube.Kubeconfig, db.URL())
		<-ctx.Done()
	}
	return steps, nil
}

// stop runs a teardown and keeps the first error.
func stop(err *error, what string, fn func() error) {
	if e := fn(); e != nil && *err == nil {
		*err = fmt.Errorf("stop %s: %w", what, e)
	}
}
