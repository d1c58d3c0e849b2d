package cli

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/kubeforward"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// clusterDatabase does what db-port-forward and db-password-from ask for, before anything
// connects to the database: it checks the permissions both need (a SelfSubjectAccessReview
// each), reads the password from its Secret (masked first, and a secret of cfg from then on),
// and starts the port-forward, pointing cfg's connection at it. It returns the forward (nil
// when none was asked for), which the caller closes when the run ends. Every error means the
// run is refused: nothing was changed. client may be nil: one is made from cfg.
func clusterDatabase(ctx context.Context, cfg *config.Config, getenv func(string) string, client *helmrelease.Client,
	act *ghaction.Action, log *slog.Logger) (*kubeforward.Forward, error) {
	if cfg.DBPortForward == "" && cfg.DBPasswordFrom == "" {
		return nil, nil
	}
	if client == nil {
		var err error
		if client, err = helmClient(ctx, cfg, getenv, log); err != nil {
			return nil, err
		}
	}
	restConfig, err := client.RESTConfig()
	if err != nil {
		return nil, err
	}
	kube, ns := client.Kubernetes(), client.Namespace()

	var spec *forwardspec.Spec
	switch cfg.DBPortForward {
	case "":
	case forwardspec.Auto:
		cur, err := client.Current(cfg.ReleaseName)
		if err != nil {
			return nil, fmt.Errorf("db-port-forward auto: release %s: %w", cfg.ReleaseName, err)
		}
		s, err := kubeforward.FromManifest(cur.Manifest)
		if err != nil {
			return nil, fmt.Errorf("db-port-forward auto: release %s revision %d: %w", cur.Name, cur.Revision, err)
		}
		log.InfoContext(ctx, "db-port-forward auto: the release's PostgreSQL", "target", s.String(), "revision", cur.Revision)
		spec = &s
	default:
		s, err := forwardspec.Parse(cfg.DBPortForward)
		if err != nil {
			return nil, fmt.Errorf("db-port-forward: %w", err)
		}
		spec = &s
	}
	var secret *forwardspec.SecretRef
	if cfg.DBPasswordFrom != "" {
		ref, err := forwardspec.ParseSecretRef(cfg.DBPasswordFrom)
		if err != nil {
			return nil, fmt.Errorf("db-password-from: %w", err)
		}
		secret = &ref
	}

	if err := kubeforward.CheckAccess(ctx, kube, ns, kubeforward.Needs(spec, secret)); err != nil {
		var inputs []string
		if spec != nil {
			inputs = append(inputs, "db-port-forward")
		}
		if secret != nil {
			inputs = append(inputs, "db-password-from")
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(inputs, ", "), err)
	}
	if secret != nil {
		password, err := kubeforward.ReadSecret(ctx, kube, ns, *secret)
		if err != nil {
			return nil, fmt.Errorf("db-password-from: %w", err)
		}
		if act != nil {
			act.Mask(password)
		}
		cfg.UseClusterPassword(password)
	}
	if spec == nil {
		return nil, nil
	}
	fwd, err := kubeforward.Start(ctx, kubeforward.Options{Config: restConfig, Client: kube, Namespace: ns, Spec: *spec,
		Attempts: cfg.DBAttempts, Backoff: cfg.DBRetryBackoff, Log: log})
	if err != nil {
		return nil, fmt.Errorf("db-port-forward %s: %w", spec, err)
	}
	cfg.UseForward(fwd.Host(), fwd.Port())
	return fwd, nil
}

// databaseWait bounds the wait for the database behind a port-forward to accept connections
// again before a restore.
const databaseWait = 3 * time.Minute

// dbSession is how this run's database sessions present themselves (application_name naming
// the tool and the run), how long they wait for a lock and how often what is safe to repeat
// is tried, from the db-* inputs. Behind a forward, the log says which pod a broken stream
// went to.
func dbSession(cfg *config.Config, run string, fwd *kubeforward.Forward, log *slog.Logger) pgbackup.Session {
	s := pgbackup.Session{
		Run: run, LockTimeout: cfg.DBLockTimeout, Log: log,
		Retry: pgbackup.Retry{Attempts: cfg.DBAttempts, Backoff: cfg.DBRetryBackoff},
	}
	if fwd != nil {
		s.Route = fwd.Route
	}
	return s
}

// sessionRun names this run in its database sessions' application_name, short enough for the
// server's 63 bytes: the workflow run and attempt, else the process and its start.
func sessionRun(getenv func(string) string) string {
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		return "gh-" + id + "-" + cmp.Or(getenv("GITHUB_RUN_ATTEMPT"), "1")
	}
	return fmt.Sprintf("pid-%d-%s", os.Getpid(), strconv.FormatInt(time.Now().UnixMilli(), 36))
}

// endRunSessions ends what this run left on the database server (sessions whose stream
// broke where the server could not see it), so that the run leaves no session behind. A
// failure to do so is a warning: the next run ends them before it restores or backs up.
func endRunSessions(ctx context.Context, s pgbackup.Session, connString string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.EndRunSessions(ctx, connString); err != nil {
		log.WarnContext(ctx, "could not check the database for sessions this run left", "err", err)
	}
}

// forwardedDatabase is the database behind a port-forward: before a restore, a comparison
// with the backup or a verification it waits until the database accepts connections (the pod
// may have been replaced by the orphan re-create of an upgrade or a rollback).
type forwardedDatabase struct {
	rollout.Databaser
	connString string
	session    pgbackup.Session
}

// behindForward wraps db when there is a forward; without one it returns db itself.
func behindForward(fwd *kubeforward.Forward, cfg *config.Config, db rollout.Databaser, s pgbackup.Session) rollout.Databaser {
	if fwd == nil {
		return db
	}
	return forwardedDatabase{Databaser: db, connString: cfg.DatabaseConnString(), session: s}
}

func (d forwardedDatabase) Restore(ctx context.Context, b rollout.Backup) (string, error) {
	if err := d.session.WaitForDatabase(ctx, d.connString, databaseWait); err != nil {
		return "", err
	}
	return d.Databaser.Restore(ctx, b)
}

func (d forwardedDatabase) Drift(ctx context.Context, b rollout.Backup) (string, error) {
	if err := d.session.WaitForDatabase(ctx, d.connString, databaseWait); err != nil {
		return "", err
	}
	return d.Databaser.Drift(ctx, b)
}

func (d forwardedDatabase) Verify(ctx context.Context, b rollout.Backup) error {
	if err := d.session.WaitForDatabase(ctx, d.connString, databaseWait); err != nil {
		return err
	}
	return d.Databaser.Verify(ctx, b)
}
