package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/keycloak"
	"github.com/identity-upgrade/identity-upgrade/internal/kubeauth"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/readiness"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// runPlan is the read-only preflight: release, target manifest diff and database facts.
// It exits 0 when the upgrade would start and 2 when the preflight would refuse it. As an action
// (act not nil) it also writes the outputs, the job summary and an annotation.
func runPlan(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger, act *ghaction.Action) int {
	started := time.Now()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "identity-upgrade plan: preflight failed; nothing was changed: %v\n", err)
		return refuse(act, rollout.Refusal(cfg.ReleaseName, cfg.Namespace, started, err), stderr)
	}
	client, err := helmClient(ctx, cfg, getenv, log)
	if err != nil {
		return fail(err)
	}
	releases := helmrelease.Renderer{Client: client, Spec: upgradeSpec(cfg)}
	fwd, err := clusterDatabase(ctx, cfg, getenv, client, act, log)
	if err != nil {
		return fail(err)
	}
	defer fwd.Close()
	session := dbSession(cfg, sessionRun(getenv), fwd, log)
	db := pgbackup.Inspector{ConnString: cfg.DatabaseConnString(), Clients: pgbackup.ClientChooser{Dir: cfg.PgBinDir}, Session: session}
	restConfig, err := client.RESTConfig()
	if err != nil {
		return fail(err)
	}
	waiter, err := readiness.New(restConfig, log)
	if err != nil {
		return fail(err)
	}
	plan, err := rollout.MakePlan(ctx, releases, db, waiter, planRequest(cfg, client.Namespace()))
	if err != nil {
		if errors.Is(err, helmrelease.ErrReleaseNotFound) {
			err = fmt.Errorf("%w (check release-name and namespace: helm list --all-namespaces shows the releases)", err)
		}
		return fail(err)
	}
	workload := cfg.Workload
	if workload == "auto" {
		workload = ""
	}
	rollout.PlanThemes(ctx, keycloak.Customizations{Client: client.Kubernetes(), Config: restConfig, Workload: workload,
		Admin: &keycloak.Admin{BaseURL: cfg.KeycloakURL, User: cfg.KeycloakAdminUser, Password: cfg.KeycloakAdminPassword, Log: log}, Log: log}, &plan)
	warn(stderr, "write the plan", plan.WriteText(stdout))
	rep := &rollout.Report{
		Result: plan.Result(), DryRun: true, Release: cfg.ReleaseName, Namespace: client.Namespace(),
		PreviousRevision: plan.Current.Revision, Revision: plan.Current.Revision,
		FromChart: plan.Current.Chart(), ToChart: plan.Target.Chart(), Plan: plan, Started: started,
	}
	if plan.Refused() {
		rep.Failure = errors.Join(plan.Refusals...)
	}
	rep.Duration = time.Since(started)
	if act != nil {
		report(act, rep, stderr)
	}
	return rep.ExitCode()
}

// upgradeSpec is the target of the upgrade as the inputs give it.
func upgradeSpec(cfg *config.Config) helmrelease.UpgradeSpec {
	return helmrelease.UpgradeSpec{
		Chart: cfg.Chart, Version: cfg.ChartVersion, RepoURL: cfg.RepoURL,
		Values: cfg.Values, ValuesFiles: cfg.ValuesFiles, Set: cfg.Set, ReuseValues: cfg.ReuseValues,
		MigrateValues: cfg.MigrateValues, ConvertRemovedAPIs: cfg.ConvertRemovedAPIs,
		Username: cfg.RegistryUsername, Password: cfg.RegistryPassword,
	}
}

// helmClient connects to the cluster of the kubeconfig input (content), else kubeconfig-path
// (KUBECONFIG), ~/.kube/config or in-cluster, in the namespace input, with the token of
// cluster-auth's provider in place of a managed cluster's credential plugin.
func helmClient(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger) (*helmrelease.Client, error) {
	cc, auth, err := kubeauth.Load(ctx, kubeauth.Options{
		Provider:  cfg.ClusterAuth,
		Content:   []byte(cfg.Kubeconfig),
		Path:      cfg.KubeconfigPath,
		Context:   cfg.KubeContext,
		Namespace: cfg.Namespace,
		Getenv:    getenv,
	})
	if err != nil {
		return nil, err
	}
	if auth != nil {
		log.InfoContext(ctx, "cluster token from the cloud's credentials", "cluster-auth", auth.Provider())
	}
	return helmrelease.New(helmrelease.Options{ClientConfig: cc, Namespace: cfg.Namespace, Log: log})
}

// planRequest is the part of the configuration the plan needs, for plan and upgrade alike.
func planRequest(cfg *config.Config, namespace string) rollout.PlanRequest {
	return rollout.PlanRequest{
		Release:              cfg.ReleaseName,
		Namespace:            namespace,
		RecreateStatefulSets: cfg.RecreateStatefulSets,
		RollbackHooks:        cfg.RollbackHooks,
		UnlockPending:        cfg.UnlockPending,
		MapRemovedAPIs:       cfg.MapRemovedAPIs,
		ConvertRemovedAPIs:   cfg.ConvertRemovedAPIs,
		MigrateValues:        cfg.MigrateValues,
		Advise:               cfg.Advise,
	}
}
