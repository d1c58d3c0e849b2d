package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/readiness"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// runPlan is the read-only preflight: release, target manifest diff and database facts.
// It exits 0 when the upgrade would start and 2 when the preflight would refuse it.
func runPlan(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) int {
	client, err := helmClient(cfg, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade plan: preflight failed; nothing was changed: %v\n", err)
		return rollout.ExitRefused
	}
	releases := helmrelease.Renderer{Client: client, Spec: upgradeSpec(cfg)}
	fwd, err := clusterDatabase(ctx, cfg, getenv, client, nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade plan: preflight failed; nothing was changed: %v\n", err)
		return rollout.ExitRefused
	}
	defer fwd.Close()
	db := pgbackup.Inspector{ConnString: cfg.DatabaseConnString(), Clients: pgbackup.ClientChooser{Dir: cfg.PgBinDir}}
	restConfig, err := client.RESTConfig()
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade plan: preflight failed; nothing was changed: %v\n", err)
		return rollout.ExitRefused
	}
	waiter, err := readiness.New(restConfig, log)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade plan: preflight failed; nothing was changed: %v\n", err)
		return rollout.ExitRefused
	}
	plan, err := rollout.MakePlan(ctx, releases, db, waiter, rollout.PlanRequest{
		Release:              cfg.ReleaseName,
		Namespace:            client.Namespace(),
		RecreateStatefulSets: cfg.RecreateStatefulSets,
		RollbackHooks:        cfg.RollbackHooks,
		UnlockPending:        cfg.UnlockPending,
		Action:               cfg.Action,
	})
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade plan: preflight failed; nothing was changed: %v\n", err)
		if errors.Is(err, helmrelease.ErrReleaseNotFound) {
			fmt.Fprintln(stderr, "Check release-name and namespace (helm list --all-namespaces shows the releases).")
		}
		return rollout.ExitRefused
	}
	warn(stderr, "write the plan", plan.WriteText(stdout))
	if plan.Refused() {
		return rollout.ExitRefused
	}
	return rollout.ExitOK
}

// upgradeSpec is the target of the upgrade as the inputs give it.
func upgradeSpec(cfg *config.Config) helmrelease.UpgradeSpec {
	return helmrelease.UpgradeSpec{
		Chart: cfg.Chart, Version: cfg.ChartVersion, RepoURL: cfg.RepoURL,
		Values: cfg.Values, ValuesFiles: cfg.ValuesFiles, Set: cfg.Set, ReuseValues: cfg.ReuseValues,
		Username: cfg.RegistryUsername, Password: cfg.RegistryPassword,
	}
}

// helmClient connects to the cluster of the kubeconfig input (content), else $KUBECONFIG or
// in-cluster, in the namespace input.
func helmClient(cfg *config.Config, getenv func(string) string, log *slog.Logger) (*helmrelease.Client, error) {
	return helmrelease.New(helmrelease.Options{
		KubeconfigData: []byte(cfg.Kubeconfig),
		KubeconfigPath: getenv("KUBECONFIG"),
		Context:        cfg.KubeContext,
		Namespace:      cfg.Namespace,
		Log:            log,
	})
}
