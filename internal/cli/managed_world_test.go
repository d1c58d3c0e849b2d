package cli

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// Managed clusters: the kubeconfigs that aws eks update-kubeconfig, gcloud container clusters
// get-credentials and az aks get-credentials write name credential plugins that the action's
// image does not have. The simulated cluster's API server accepts each provider's tokens
// through the test's token webhook, checked against the test's stand-in of the provider's token
// service; the real binary runs with a PATH that has none of the plugins and must reach the
// cluster with the token it gets itself.

// managedCluster is one provider's side of a test: the kubeconfig user as its tool writes it,
// the environment the job would have, and what the stand-in issued.
type managedCluster struct {
	provider  string
	cluster   string // the kubeconfig's cluster (and user) name
	exec      string // the user's exec stanza, YAML
	env       map[string]string
	validator testworld.TokenValidator
	user      string           // whom the API server sees
	issued    func() int       // tokens issued (EKS: accepted)
	secrets   func() []string  // everything that must not be shown
	sts       *testworld.STS   // aws only
	entra     *testworld.Entra // azure only
}

// eksCluster: static session credentials as aws-actions/configure-aws-credentials exports
// them, or (web identity) AWS_ROLE_ARN with a token file and credentials of lifetime life.
func eksCluster(t *testing.T, life time.Duration, webIdentity bool) managedCluster {
	sts := testworld.StartSTS(t)
	sts.Lifetime = life
	const name = "identity"
	m := managedCluster{provider: "aws", cluster: "arn:aws:eks:eu-west-1:111122223333:cluster/" + name,
		exec: `      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - --region
      - eu-west-1
      - eks
      - get-token
      - --cluster-name
      - identity
      - --output
      - json
      command: aws
`,
		env: map[string]string{"AWS_ENDPOINT_URL_STS": sts.URL, "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
			"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"},
		validator: sts.EKSValidator(name), issued: sts.Accepted, secrets: sts.Secrets, sts: sts}
	if webIdentity {
		sts.RoleARN, sts.WebIdentityToken = "arn:aws:iam::111122223333:role/identity-upgrade", "oidc-"+strconv.FormatInt(time.Now().UnixNano(), 36)
		file := filepath.Join(t.TempDir(), "web-identity-token")
		if err := os.WriteFile(file, []byte(sts.WebIdentityToken), 0o600); err != nil {
			t.Fatal(err)
		}
		m.env["AWS_ROLE_ARN"], m.env["AWS_WEB_IDENTITY_TOKEN_FILE"], m.env["AWS_ROLE_SESSION_NAME"] = sts.RoleARN, file, "GitHubActions"
		m.user = "arn:aws:sts::111122223333:assumed-role/identity-upgrade/GitHubActions"
	} else {
		m.user = "arn:aws:sts::111122223333:assumed-role/identity-upgrade/GitHubActions"
		id, secret, session := sts.Key(m.user)
		m.env["AWS_ACCESS_KEY_ID"], m.env["AWS_SECRET_ACCESS_KEY"], m.env["AWS_SESSION_TOKEN"] = id, secret, session
	}
	return m
}

// gkeCluster: google-github-actions/auth's credentials file for workload identity federation,
// written into the workspace; GOOGLE_APPLICATION_CREDENTIALS names it by its path on the runner.
func gkeCluster(t *testing.T, life time.Duration, ws workspace) managedCluster {
	g := testworld.StartGoogle(t, "identity-upgrade@example-project.iam.gserviceaccount.com")
	g.Lifetime = life
	file := g.CredentialsFile(t, ws.container)
	env := ws.env()
	env["GOOGLE_APPLICATION_CREDENTIALS"] = ws.runner + "/" + filepath.Base(file)
	return managedCluster{provider: "gcp", cluster: "gke_example-project_europe-west1_identity",
		exec: `      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin for use with kubectl by following
        https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin
      provideClusterInfo: true
`,
		env: env, validator: g.Validator(), user: g.ServiceAccount, issued: g.Issued, secrets: g.Secrets}
}

// aksCluster: the federated credential's token file with AZURE_CLIENT_ID and AZURE_TENANT_ID,
// and the stand-in's authority (TLS, trusted through SSL_CERT_FILE).
func aksCluster(t *testing.T, life time.Duration) managedCluster {
	e := testworld.StartEntra(t)
	e.Lifetime = life
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(e.Assertion), 0o600); err != nil {
		t.Fatal(err)
	}
	return managedCluster{provider: "azure", cluster: "identity",
		exec: `      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - get-token
      - --environment
      - AzurePublicCloud
      - --server-id
      - 6dae42f8-4368-4678-94ff-3960e28e3630
      - --client-id
      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a
      - --tenant-id
      - ` + e.Tenant + `
      - --login
      - devicecode
      command: kubelogin
      env: null
      installHint: |2

        kubelogin is not installed which is required to connect to AAD enabled cluster.
      provideClusterInfo: false
`,
		env: map[string]string{"AZURE_CLIENT_ID": e.ClientID, "AZURE_TENANT_ID": e.Tenant, "AZURE_FEDERATED_TOKEN_FILE": file,
			"AZURE_AUTHORITY_HOST": e.URL, "SSL_CERT_FILE": e.CAFile},
		validator: e.Validator(), user: e.ClientID, issued: e.Issued, secrets: e.Secrets, entra: e}
}

// startManaged starts provider's stand-in issuing tokens (EKS: credentials) of lifetime life;
// EKS credentials come from web identity when the tokens are short.
func startManaged(t *testing.T, provider string, life time.Duration, ws workspace) managedCluster {
	switch provider {
	case "aws":
		return eksCluster(t, life, life < time.Minute)
	case "gcp":
		return gkeCluster(t, life, ws)
	default:
		return aksCluster(t, life)
	}
}

// environ is the job's environment for a run against w's release with m's credentials.
func (m managedCluster) environ(w *installed) map[string]string {
	env := map[string]string{"PGPASSWORD": w.db.OwnerPassword}
	for k, v := range m.env {
		env[k] = v
	}
	return env
}

// workspace is a container action's view of the runner's workspace: the runner's path (which
// earlier steps write into inputs and variables) and the directory the container sees.
type workspace struct{ runner, container string }

func newWorkspace(t *testing.T) workspace {
	return workspace{runner: "/home/runner/work/identity/identity", container: t.TempDir()}
}

// env is what GitHub sets for a container action about the workspace.
func (ws workspace) env() map[string]string {
	return map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws.container,
		"RUNNER_WORKSPACE": filepath.Dir(ws.runner), "GITHUB_REPOSITORY": "example/identity"}
}

// kubeconfig writes m's kubeconfig for the simulated cluster into dir: its server and CA,
// m's cluster and user names, and m's exec stanza as the only credentials.
func (m managedCluster) kubeconfig(t *testing.T, kube testworld.Kube, dir string) string {
	t.Helper()
	admin, err := clientcmd.Load(kube.KubeconfigData)
	if err != nil {
		t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	if len(cluster.CertificateAuthorityData) == 0 {
		if cluster.CertificateAuthorityData, err = os.ReadFile(cluster.CertificateAuthority); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: %s
    server: %s
  name: %s
contexts:
- context:
    cluster: %s
    user: %s
  name: %s
current-context: %s
kind: Config
preferences: {}
users:
- name: %s
  user:
    exec:
%s`, base64.StdEncoding.EncodeToString(cluster.CertificateAuthorityData), cluster.Server, m.cluster, m.cluster, m.cluster, m.cluster, m.cluster, m.cluster, m.exec)
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// withoutPlugins is PATH less every directory holding a credential plugin of a cloud's tools:
// the action's image has none.
func withoutPlugins(t *testing.T) string {
	var dirs []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		has := false
		for _, plugin := range []string{"aws", "aws-iam-authenticator", "gke-gcloud-auth-plugin", "gcloud", "kubelogin", "az"} {
			if _, err := os.Stat(filepath.Join(dir, plugin)); err == nil {
				has = true
			}
		}
		if !has {
			dirs = append(dirs, dir)
		}
	}
	return strings.Join(dirs, string(filepath.ListSeparator))
}

// accept registers m's validator with the cluster, recording the users it authenticated, and
// binds the README's Role to m's user.
func (m managedCluster) accept(t *testing.T, kube testworld.Kube) *usersSeen {
	seen := &usersSeen{}
	kube.AcceptTokens(t, func(token string) (authenticationv1.UserInfo, bool) {
		u, ok := m.validator(token)
		if ok {
			seen.add(u.Username)
		}
		return u, ok
	})
	kube.BindUser(t, "identity-upgrade-"+m.provider, m.user, readmeRole(t).Rules)
	return seen
}

type usersSeen struct {
	mu    sync.Mutex
	users map[string]int
}

func (s *usersSeen) add(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == nil {
		s.users = map[string]int{}
	}
	s.users[u]++
}

func (s *usersSeen) count(u string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[u]
}

// runBinary runs the real identity-upgrade with exactly env (and a PATH without plugins).
func runBinary(t *testing.T, env map[string]string, args ...string) (result, time.Duration) {
	t.Helper()
	cmd := exec.Command(identityUpgrade(t), args...)
	cmd.Env = []string{"PATH=" + withoutPlugins(t), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	err := cmd.Run()
	took := time.Since(started)
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("identity-upgrade %s: exit %d in %s\n%s\n%s", strings.Join(args, " "), code, took.Round(time.Millisecond), r.stdout, r.stderr)
	return r, took
}

// planArgs are the flags of a plan of w's release; the password comes from PGPASSWORD.
func (w *installed) planArgs(cmd string) []string {
	args := []string{cmd, "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
		"--db-host", w.db.Host, "--db-port", strconv.Itoa(w.db.Port), "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable", "--recreate-statefulsets", "orphan"}
	if cmd == "upgrade" {
		args = append(args, "--backup-store", "path:"+w.stores, "--timeout", "90s")
	}
	return args
}

// succeeded checks a run with m's credentials: exit 0, the API server saw m's user, and no
// secret of the provider is in the output.
func (m managedCluster) succeeded(t *testing.T, r result, seen *usersSeen, what string) {
	t.Helper()
	if r.code != rollout.ExitOK {
		t.Fatalf("%s: exit %d\n%s", what, r.code, r.stderr)
	}
	if seen.count(m.user) == 0 {
		t.Errorf("the API server never saw %s", m.user)
	}
	noSecrets(t, r, m.secrets())
}

func noSecrets(t *testing.T, r result, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
			t.Errorf("the output shows a secret of the provider (%d characters)", len(s))
		}
	}
}

// TestManagedClusterPlans: plan with each tool's kubeconfig, in the three ways a kubeconfig
// reaches the binary: --kubeconfig-path (EKS), KUBECONFIG (GKE), and as the action with
// kubeconfig-path given as the runner's path of a file in the workspace (AKS), which also
// reaches the release's own database through a port-forward with the provider's token, as
// the README's workflows do.
func TestManagedClusterPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("plans on the simulated cluster")
	}
	for _, provider := range []string{"aws", "gcp", "azure"} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			var w *installed
			var args []string
			if provider == "azure" {
				w = installInCluster(t)
				args = []string{"plan", "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
					"--db-name", w.db.Database, "--db-user", w.db.Owner, "--db-sslmode", "disable", "--recreate-statefulsets", "orphan",
					"--db-port-forward", "auto", "--db-password-from", dbSecret}
			} else {
				w = install13(t)
				args = w.planArgs("plan")
			}
			ws := newWorkspace(t)
			m := startManaged(t, provider, time.Hour, ws)
			seen := m.accept(t, w.kube)
			env := m.environ(w)
			switch provider {
			case "aws":
				args = append(args, "--kubeconfig-path", m.kubeconfig(t, w.kube, t.TempDir()))
			case "gcp":
				env["KUBECONFIG"] = m.kubeconfig(t, w.kube, t.TempDir())
			case "azure":
				// The action: every input as GitHub passes it, the kubeconfig written into the
				// workspace by an earlier step and named by its path on the runner.
				m.kubeconfig(t, w.kube, ws.container)
				for k, v := range ws.env() {
					env[k] = v
				}
				for _, in := range config.Inputs() {
					if !in.CLIOnly {
						env[config.EnvName(in.Name)] = in.DefaultFor(true)
					}
				}
				for i := 1; i+1 < len(args); i += 2 {
					env[config.EnvName(strings.TrimPrefix(args[i], "--"))] = args[i+1]
				}
				env["INPUT_COMMAND"], env["INPUT_KUBECONFIG-PATH"] = "plan", ws.runner+"/kubeconfig"
				env["INPUT_BACKUP-STORE"] = "path:" + w.stores
				env["GITHUB_OUTPUT"], env["GITHUB_STEP_SUMMARY"] = filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "summary")
				env["RUNNER_TEMP"] = t.TempDir()
				args = nil
			}
			r, _ := runBinary(t, env, args...)
			m.succeeded(t, r, seen, "plan with the "+provider+" kubeconfig")
		})
	}
}

// TestManagedTokenExpiresMidRun: each provider's stand-in issues tokens (EKS: credentials,
// from web identity) that last two seconds, during an upgrade that lasts longer: the run gets
// new ones as they expire and upgrades.
func TestManagedTokenExpiresMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrades on the simulated cluster")
	}
	for _, provider := range []string{"aws", "gcp", "azure"} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			w := install13(t)
			m := startManaged(t, provider, 2*time.Second, newWorkspace(t))
			seen := m.accept(t, w.kube)
			env := m.environ(w)
			env["KUBECONFIG"] = m.kubeconfig(t, w.kube, t.TempDir())
			r, took := runBinary(t, env, append(w.planArgs("upgrade"), "--stability-window", "10s")...)
			m.succeeded(t, r, seen, "upgrade with 2-second tokens")
			w.expect(t, 2, "3.0.0", "1.4.0")
			// The run outlasts the API server's 10-second cache of an accepted token (its
			// stability window alone is 10 s), so a token is taken only as long as it is valid:
			// it had to get new ones as they expired.
			t.Logf("%d tokens in a run of %s", m.issued(), took.Round(time.Millisecond))
			if took < 12*time.Second || m.issued() < 3 {
				t.Errorf("%d tokens in a run of %s; want at least 3 in 12 s or more", m.issued(), took.Round(time.Millisecond))
			}
		})
	}
}

// TestManagedTokenRejected: an EKS token the cluster does not accept (its authenticator knows
// another cluster): plan refuses with exit 2, naming the provider and the identity STS gives
// for the credentials, never the secret.
func TestManagedTokenRejected(t *testing.T) {
	if testing.Short() {
		t.Skip("a plan on the simulated cluster")
	}
	w := install13(t)
	m := eksCluster(t, time.Hour, false)
	// The cluster's authenticator checks tokens against another cluster's name.
	m.validator = m.sts.EKSValidator("elsewhere")
	m.accept(t, w.kube)
	env := m.environ(w)
	r, _ := runBinary(t, env, append(w.planArgs("plan"), "--kubeconfig-path", m.kubeconfig(t, w.kube, t.TempDir()))...)
	if r.code != rollout.ExitRefused {
		t.Fatalf("exit %d, want %d\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	for _, want := range []string{"refused the aws token of " + m.user, "cluster-auth aws", "access entry", "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	noSecrets(t, r, m.secrets())
}
