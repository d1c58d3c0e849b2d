package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// TestUnknownCredentialPlugin: a kubeconfig whose user runs a plugin that is neither one whose
// token identity-upgrade gets itself nor installed is refused before any request, naming the
// command and the cluster-auth choices.
func TestUnknownCredentialPlugin(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: pinniped
      args: [login, oidc, --issuer, https://example.com]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, map[string]string{"PGPASSWORD": "x"}, "plan", "--release-name", "identity", "--chart", chart14,
		"--database-url", "postgres://keycloak@127.0.0.1:1/keycloak", "--kubeconfig-path", kc)
	if r.code != rollout.ExitRefused {
		t.Fatalf("exit %d, want %d\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	for _, want := range []string{`credential plugin "pinniped"`, "set cluster-auth to one of aws, gcp, azure", "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// TestKubeconfigPathOutsideTheContainer: as a container action, a kubeconfig-path on the
// runner outside the workspace (where aws eks update-kubeconfig and azure/aks-set-context
// write by default) is refused, saying where to write it.
func TestKubeconfigPathOutsideTheContainer(t *testing.T) {
	r := runAction(t, map[string]string{"INPUT_COMMAND": "plan", "INPUT_RELEASE-NAME": "identity", "INPUT_CHART": chart14,
		"INPUT_DATABASE-URL": "postgres://keycloak@127.0.0.1:1/keycloak", "INPUT_KUBECONFIG-PATH": "/home/runner/.kube/config",
		"INPUT_BACKUP-STORE": "path:" + t.TempDir(),
		"GITHUB_WORKSPACE":   t.TempDir(), "RUNNER_WORKSPACE": "/home/runner/work/identity", "GITHUB_REPOSITORY": "example/identity"})
	checkRefused(t, r, "kubeconfig-path: /home/runner/.kube/config is outside the workspace")
	if !strings.Contains(r.stderr, "/home/runner/work/identity/identity") {
		t.Errorf("the refusal does not name the workspace:\n%s", r.stderr)
	}
}
