package cli

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// The README's workflows for managed clusters log in to a cloud and write the cloud tool's
// kubeconfig into the workspace before the action's step; the examples test cannot run those
// steps, so it leaves what they leave: the provider's stand-in (managed_world_test.go) accepted
// by the cluster as the README's Role, the kubeconfig that aws eks update-kubeconfig, gcloud
// container clusters get-credentials or az aks get-credentials writes (at
// $GITHUB_WORKSPACE/kubeconfig), and the login's variables in the job's environment.

// exampleRunnerWorkspace is ${{ github.workspace }}: the workspace's path on the runner, which
// the action's container sees at GITHUB_WORKSPACE.
const exampleRunnerWorkspace = "/home/runner/work/identity/identity"

// exampleCloud is what a cloud's login steps leave for the action's steps.
type exampleCloud struct {
	env  map[string]string // in the job's environment from the login on
	vars map[string]string // repository variables the example names
}

// cloudOf is the cloud a step logs in to, by the action it uses.
func cloudOf(uses string) string {
	switch name, _, _ := strings.Cut(uses, "@"); strings.ToLower(name) {
	case "aws-actions/configure-aws-credentials":
		return "aws"
	case "google-github-actions/auth":
		return "gcp"
	case "azure/login":
		return "azure"
	}
	return ""
}

func (x *exampleWorld) startCloud(t *testing.T, cloud string) {
	t.Helper()
	ws := workspace{runner: exampleRunnerWorkspace, container: x.workspace}
	m := startManaged(t, cloud, time.Hour, ws)
	m.accept(t, x.w.kube)
	m.kubeconfig(t, x.w.kube, x.workspace)
	x.cloud = exampleCloud{env: maps.Clone(m.env), vars: map[string]string{}}
	// A container action gets RUNNER_WORKSPACE, the runner's path of the workspace's parent.
	x.cloud.env["RUNNER_WORKSPACE"] = strings.TrimSuffix(exampleRunnerWorkspace, "/identity")
	delete(x.cloud.env, "GITHUB_WORKSPACE")
	delete(x.cloud.env, "GITHUB_REPOSITORY")
	if cloud == "azure" {
		// azure/login leaves no token file: the action exchanges the job's OIDC token (the
		// job has id-token: write), with the ids the step gives from repository variables.
		for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID"} {
			x.cloud.vars[k] = m.env[k]
			delete(x.cloud.env, k)
		}
		x.cloud.vars["AZURE_SUBSCRIPTION_ID"] = "00000000-0000-4000-8000-000000000000"
		delete(x.cloud.env, "AZURE_FEDERATED_TOKEN_FILE")
		x.cloud.env["ACTIONS_ID_TOKEN_REQUEST_URL"], x.cloud.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = m.entra.GitHubOIDC()
	}
}
