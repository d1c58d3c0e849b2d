package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/keycloak"
	"github.com/identity-upgrade/identity-upgrade/internal/kubelock"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/readiness"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// runUpgrade runs the whole procedure and prints its report; the exit code is the report's.
// As an action (act not nil) it also writes the outputs, the job summary and an annotation,
// a refused setup included, and groups the log by step.
func runUpgrade(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger, act *ghaction.Action) int {
	started := time.Now()
	fail := func(format string, args ...any) int {
		err := fmt.Errorf(format, args...)
		fmt.Fprintf(stderr, "identity-upgrade %s: %v; nothing was changed\n", cfg.Command, err)
		return refuse(act, rollout.Refusal(cfg.ReleaseName, cfg.Namespace, started, err), stderr)
	}
	// The working copy of the backup lives in the runner's temp dir and goes when the run ends:
	// the stores hold the kept copies. A run that dies leaves it where the next run of the
	// release finds it (to recover the dead run) and removes it.
	work, err := pgbackup.NewWorkDir(getenv("RUNNER_TEMP"), cfg.Namespace+"_"+cfg.ReleaseName)
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(work)
	targets, err := stores(cfg, getenv, work, log)
	if err != nil {
		return fail("%v", err)
	}
	client, err := helmClient(ctx, cfg, getenv, log)
	if err != nil {
		return fail("%v", err)
	}
	restConfig, err := client.RESTConfig()
	if err != nil {
		return fail("%v", err)
	}
	waiter, err := readiness.New(restConfig, log)
	if err != nil {
		return fail("%v", err)
	}
	kube := client.Kubernetes()
	fwd, err := clusterDatabase(ctx, cfg, getenv, client, act, log)
	if err != nil {
		return fail("%v", err)
	}
	defer fwd.Close()
	if reh := rehearsal(cfg); reh != nil {
		if err := checkRehearsalAccess(ctx, kube, reh.Namespace); err != nil {
			return fail("%v", err)
		}
	}
	session := dbSession(cfg, sessionRun(getenv), fwd, log)
	defer endRunSessions(ctx, session, cfg.DatabaseConnString(), log)

	holder := lockHolder(getenv)
	// One admin API client, one login, for the sessions, the realm exports and the theme check.
	admin := &keycloak.Admin{BaseURL: cfg.KeycloakURL, User: cfg.KeycloakAdminUser, Password: cfg.KeycloakAdminPassword, Log: log}
	workload := cfg.Workload
	if workload == "auto" {
		workload = ""
	}
	p := &rollout.Pipeline{
		Releases: helmrelease.Renderer{Client: client, Spec: upgradeSpec(cfg)},
		Database: behindForward(fwd, cfg, &pgbackup.Engine{
			ConnString: cfg.DatabaseConnString(), Format: cfg.BackupFormat,
			Recipients: cfg.BackupEncryptionRecipients, WorkDir: work, Stores: targets,
			Clients: pgbackup.ClientChooser{Dir: cfg.PgBinDir}, Identity: cfg.BackupIdentity, Log: log, Session: session,
		}, session),
		Waiter:    waiter,
		Locker:    &kubelock.Locker{Client: kube, Namespace: client.Namespace(), Holder: holder, Log: log},
		Journal:   &kubelock.Journal{Client: kube, Namespace: client.Namespace()},
		Workloads: keycloak.Workloads{Client: kube, Name: workload, Log: log},
		Sessions:  keycloak.Sessions{Admin: admin, Realms: cfg.Realms, Log: log},
		TxStore:   keycloak.TxStore{Client: kube, Config: restConfig, Workload: workload, Path: cfg.TxObjectStorePath, Log: log},
		Customizer: keycloak.Customizations{Client: kube, Config: restConfig, Workload: workload,
			Dir: filepath.Join(work, "customizations"), Admin: admin, Log: log},
		// The rehearsal's clone, and what removes one a dead run left.
		Cloner: &cloner{cfg: cfg, client: client, spec: upgradeSpec(cfg), restConfig: restConfig, work: work, log: log, session: session},
		Prober: keycloak.Prober{Config: restConfig, Client: kube, Workload: workload, User: cfg.KeycloakAdminUser, Password: cfg.KeycloakAdminPassword, Log: log},
		Log:    log,
	}
	if act != nil {
		p.StepHook = act.Group
	}
	rep := p.Upgrade(ctx, rollout.UpgradeRequest{
		PlanRequest:           planRequest(cfg, client.Namespace()),
		BackupName:            cfg.BackupName,
		Timeout:               cfg.Timeout,
		StabilityWindow:       cfg.StabilityWindow,
		ProbeURL:              cfg.ProbeURL,
		Rollback:              cfg.Rollback,
		RestoreDatabase:       cfg.RestoreDatabase,
		Quiesce:               cfg.Quiesce,
		LogoutSessions:        cfg.LogoutSessions,
		ClearTxObjectStore:    cfg.ClearTxObjectStore,
		ForceRollback:         true,
		DryRun:                cfg.DryRun,
		RunID:                 runID(getenv, holder),
		Holder:                holder,
		RecoverOnly:           cfg.Command == config.CmdRecover,
		ContinueAfterRecovery: cfg.ContinueAfterRecovery,
		CancelBudget:          cfg.CancelBudget,
		Rehearse:              rehearsal(cfg),
		RehearseOnly:          cfg.Command == config.CmdRehearse,
		MissingTheme:          cfg.MissingTheme,
	})
	if rep.Plan.Current.Name != "" && (cfg.DryRun || rep.ExitCode() == rollout.ExitRefused) {
		warn(stderr, "write the plan", rep.Plan.WriteText(stdout))
		if cfg.DryRun {
			warn(stderr, "write the diff", rep.Plan.WriteDiff(stdout))
		}
	}
	return finish(act, rep, stdout, stderr)
}

// lockHolder names this run in the release's lock: the workflow run when there is one, else
// the host and process.
func lockHolder(getenv func(string) string) string {
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		return fmt.Sprintf("github-run-%s-%s", id, getenv("GITHUB_RUN_ATTEMPT"))
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-pid-%d", host, os.Getpid())
}

// runID names this run in the release's journal: the workflow run and attempt when there is
// one, else the lock holder and the start time.
func runID(getenv func(string) string, holder string) string {
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		return fmt.Sprintf("%s/%s/%s", getenv("GITHUB_REPOSITORY"), id, getenv("GITHUB_RUN_ATTEMPT"))
	}
	return holder + "@" + time.Now().UTC().Format(time.RFC3339)
}

// rehearsal is the rehearsal the run asks for: command rehearse, or upgrade with rehearse-first.
func rehearsal(cfg *config.Config) *rollout.RehearseRequest {
	if cfg.Command != config.CmdRehearse && !(cfg.Command == config.CmdUpgrade && cfg.RehearseFirst) {
		return nil
	}
	return &rollout.RehearseRequest{Namespace: cfg.RehearsalNamespaceOrDefault()}
}
