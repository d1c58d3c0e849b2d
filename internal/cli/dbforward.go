package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/kubeforward"
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
	fwd, err := kubeforward.Start(ctx, kubeforward.Options{Config: restConfig, Client: kube, Namespace: ns, Spec: *spec, Log: log})
	if err != nil {
		return nil, fmt.Errorf("db-port-forward %s: %w", spec, err)
	}
	cfg.UseForward(fwd.Host(), fwd.Port())
	return fwd, nil
}

// databaseWait bounds the wait for the database behind a port-forward to accept connections
// again before a restore.
const databaseWait = 3 * time.Minute

// waitForDatabase waits (up to databaseWait, and the context) until the database of
// connString accepts a connection and answers: behind a port-forward it may be a pod that a
// rollback has just replaced, still starting.
func waitForDatabase(ctx context.Context, connString string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, databaseWait)
	defer cancel()
	begin := time.Now()
	var last error
	for attempt := 1; ; attempt++ {
		last = ping(ctx, connString)
		if last == nil {
			if attempt > 1 {
				log.InfoContext(ctx, "the database accepts connections again", "after", time.Since(begin).Round(time.Millisecond))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the database behind the port-forward did not accept connections within %s: %w", time.Since(begin).Round(time.Second), last)
		case <-time.After(time.Second):
		}
	}
}

func ping(ctx context.Context, connString string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// forwardedDatabase is the database behind a port-forward: before a restore, a comparison
// with the backup or a verification it waits until the database accepts connections (the pod
// may have been replaced by the orphan re-create of an upgrade or a rollback).
type forwardedDatabase struct {
	rollout.Databaser
	connString string
	log        *slog.Logger
}

// behindForward wraps db when there is a forward; without one it returns db itself.
func behindForward(fwd *kubeforward.Forward, cfg *config.Config, db rollout.Databaser, log *slog.Logger) rollout.Databaser {
	if fwd == nil {
		return db
	}
	return forwardedDatabase{Databaser: db, connString: cfg.DatabaseConnString(), log: log}
}

func (d forwardedDatabase) Restore(ctx context.Context, b rollout.Backup) (string, error) {
	if err := waitForDatabase(ctx, d.connString, d.log); err != nil {
		return "", err
	}
	return d.Databaser.Restore(ctx, b)
}

func (d forwardedDatabase) Drift(ctx context.Context, b rollout.Backup) (string, error) {
	if err := waitForDatabase(ctx, d.connString, d.log); err != nil {
		return "", err
	}
	return d.Databaser.Drift(ctx, b)
}

func (d forwardedDatabase) Verify(ctx context.Context, b rollout.Backup) error {
	if err := waitForDatabase(ctx, d.connString, d.log); err != nil {
		return err
	}
	return d.Databaser.Verify(ctx, b)
}
