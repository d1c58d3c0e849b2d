package kubeauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The providers against stand-ins of their token services (testworld): the tokens they get
// are the ones the services issue, and an EKS token is checked as STS checks it.

// token gets the provider's token as the transport does.
func token(t *testing.T, auth *Auth) string {
	t.Helper()
	tok, err := auth.tokens.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// awsEnv sets the process environment the AWS SDK reads: no profile, config file or instance
// role of this machine, STS at the stand-in.
func awsEnv(t *testing.T, sts *testworld.STS, env map[string]string) {
	dir := t.TempDir()
	for k, v := range map[string]string{"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_STS": sts.URL, "AWS_REGION": "eu-west-1",
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ENDPOINT_URL": ""} {
		t.Setenv(k, v)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

const updateKubeconfigExec = `      command: aws
      args: [--region, eu-west-1, eks, get-token, --cluster-name, identity, --output, json]
`

func TestEKSToken(t *testing.T) {
	sts := testworld.StartSTS(t)
	const arn = "arn:aws:sts::111122223333:assumed-role/identity-upgrade/GitHubActions"
	id, secret, session := sts.Key(arn)
	awsEnv(t, sts, map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": session})

	_, auth, err := Load(t.Context(), Options{Content: kubeconfigWith("arn:aws:eks:eu-west-1:111122223333:cluster/identity", updateKubeconfigExec), Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, auth)
	if got, err := sts.VerifyEKSToken(tok, "identity"); err != nil || got != arn {
		t.Fatalf("token of %q (%v), want %s", got, err, arn)
	}
	if _, err := sts.VerifyEKSToken(tok, "another"); err == nil {
		t.Error("the token is accepted for another cluster: the cluster's name is not signed")
	}
	if token(t, auth) != tok {
		t.Error("a token 15 minutes long was not reused")
	}
	if who := auth.tokens.src.identity(t.Context()); who != arn {
		t.Errorf("identity %q, want %s (sts:GetCallerIdentity)", who, arn)
	}

	// cluster-auth aws with a kubeconfig that has no plugin: the cluster's ARN names it.
	plain := []byte(strings.Replace(string(kubeconfigWith("arn:aws:eks:eu-west-1:111122223333:cluster/identity", "      command: x\n")),
		"    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: x\n", "    token: old\n", 1))
	_, auth, err = Load(t.Context(), Options{Provider: AWS, Content: plain, Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sts.VerifyEKSToken(token(t, auth), "identity"); err != nil {
		t.Errorf("cluster-auth aws from the cluster's ARN: %v", err)
	}
}

// TestEKSTokenWebIdentityRenewed: credentials from AssumeRoleWithWebIdentity that last two
// seconds; the token is signed anew with new credentials before they expire.
func TestEKSTokenWebIdentityRenewed(t *testing.T) {
	sts := testworld.StartSTS(t)
	sts.Lifetime, sts.RoleARN, sts.WebIdentityToken = 2*time.Second, "arn:aws:iam::111122223333:role/identity-upgrade", "oidc-"+t.Name()
	file := filepath.Join(t.TempDir(), "web-identity")
	if err := os.WriteFile(file, []byte(sts.WebIdentityToken), 0o600); err != nil {
		t.Fatal(err)
	}
	awsEnv(t, sts, map[string]string{"AWS_ROLE_ARN": sts.RoleARN, "AWS_WEB_IDENTITY_TOKEN_FILE": file, "AWS_ROLE_SESSION_NAME": "run"})
	_, auth, err := Load(t.Context(), Options{Content: kubeconfigWith("c", updateKubeconfigExec), Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		tok := token(t, auth)
		if _, err := sts.VerifyEKSToken(tok, "identity"); err != nil {
			t.Fatalf("after %d tokens: %v", len(seen), err)
		}
		seen[tok] = true
	}
	if len(seen) < 3 || sts.Assumed() < 3 {
		t.Errorf("%d tokens from %d credentials in 5 s of 2-second credentials", len(seen), sts.Assumed())
	}
}

func TestGKEToken(t *testing.T) {
	g := testworld.StartGoogle(t, "identity-upgrade@example-project.iam.gserviceaccount.com")
	g.Lifetime = 2 * time.Second
	container := t.TempDir()
	file := g.CredentialsFile(t, container)
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": container, "RUNNER_WORKSPACE": "/home/runner/work/identity",
		"GITHUB_REPOSITORY": "example/identity", "GOOGLE_APPLICATION_CREDENTIALS": "/home/runner/work/identity/identity/" + filepath.Base(file)}
	kc := kubeconfigWith("gke_example-project_europe-west1_identity", "      command: gke-gcloud-auth-plugin\n      installHint: Install gke-gcloud-auth-plugin\n      provideClusterInfo: true\n")
	_, auth, err := Load(t.Context(), Options{Content: kc, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	first := token(t, auth)
	if user, ok := g.Validator()(first); !ok || user.Username != g.ServiceAccount {
		t.Fatalf("token not accepted (user %q)", user.Username)
	}
	time.Sleep(2 * time.Second)
	second := token(t, auth)
	if _, ok := g.Validator()(second); !ok || second == first {
		t.Errorf("after the token expired: a new one %v, accepted %v", second != first, ok)
	}
	if who := auth.tokens.src.identity(t.Context()); who != g.ServiceAccount {
		t.Errorf("identity %q", who)
	}
}

func TestAKSToken(t *testing.T) {
	e := testworld.StartEntra(t)
	e.Lifetime = 2 * time.Second
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(e.Assertion), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"AZURE_CLIENT_ID": e.ClientID, "AZURE_TENANT_ID": e.Tenant, "AZURE_FEDERATED_TOKEN_FILE": file, "AZURE_AUTHORITY_HOST": e.URL}
	kc := kubeconfigWith("identity", "      command: kubelogin\n      args: [get-token, --environment, AzurePublicCloud, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, "+e.Tenant+", --login, devicecode]\n")
	_, auth, err := Load(t.Context(), Options{Content: kc, Getenv: func(k string) string { return env[k] }, HTTPClient: e.Client})
	if err != nil {
		t.Fatal(err)
	}
	first := token(t, auth)
	if user, ok := e.Validator()(first); !ok || user.Username != e.ClientID {
		t.Fatalf("token not accepted (user %q)", user.Username)
	}
	time.Sleep(2 * time.Second)
	if second := token(t, auth); second == first {
		t.Error("an expired token was used again")
	} else if _, ok := e.Validator()(second); !ok {
		t.Error("the new token is not accepted")
	}
	if who := auth.tokens.src.identity(t.Context()); !strings.Contains(who, e.ClientID) || !strings.Contains(who, e.Tenant) {
		t.Errorf("identity %q", who)
	}
}

// TestAKSTokenFromGitHubOIDC: without a token file, the workflow's OIDC token (permissions
// id-token: write) is the federated credential, asked for Entra's audience.
func TestAKSTokenFromGitHubOIDC(t *testing.T) {
	e := testworld.StartEntra(t)
	requestURL, requestToken := e.GitHubOIDC()
	env := map[string]string{"AZURE_CLIENT_ID": e.ClientID, "AZURE_TENANT_ID": e.Tenant, "AZURE_AUTHORITY_HOST": e.URL,
		"ACTIONS_ID_TOKEN_REQUEST_URL": requestURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": requestToken}
	kc := kubeconfigWith("identity", "      command: kubelogin\n      args: [get-token, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --login, devicecode]\n")
	_, auth, err := Load(t.Context(), Options{Content: kc, Getenv: func(k string) string { return env[k] }, HTTPClient: e.Client})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Validator()(token(t, auth)); !ok {
		t.Error("token not accepted")
	}
}

// TestEKSTokenAssumesTheKubeconfigsRole: aws eks update-kubeconfig --role-arn writes the role
// into the exec stanza; the token is signed by that role's credentials.
func TestEKSTokenAssumesTheKubeconfigsRole(t *testing.T) {
	sts := testworld.StartSTS(t)
	id, secret, session := sts.Key("arn:aws:sts::111122223333:assumed-role/ci/GitHubActions")
	awsEnv(t, sts, map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": session})
	kc := kubeconfigWith("c", strings.Replace(updateKubeconfigExec, "--output, json]", "--output, json, --role-arn, arn:aws:iam::111122223333:role/eks-admin]", 1))
	_, auth, err := Load(t.Context(), Options{Content: kc, Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	arn, err := sts.VerifyEKSToken(token(t, auth), "identity")
	if err != nil || !strings.HasPrefix(arn, "arn:aws:sts::111122223333:assumed-role/eks-admin/") {
		t.Fatalf("token of %q (%v), want the role eks-admin", arn, err)
	}
}

// TestAKSTokenFromClientSecret: AZURE_CLIENT_SECRET, as kubelogin's spn login takes it.
func TestAKSTokenFromClientSecret(t *testing.T) {
	e := testworld.StartEntra(t)
	env := map[string]string{"AZURE_CLIENT_ID": e.ClientID, "AZURE_TENANT_ID": e.Tenant, "AZURE_CLIENT_SECRET": e.Secret, "AZURE_AUTHORITY_HOST": e.URL}
	kc := kubeconfigWith("identity", "      command: kubelogin\n      args: [get-token, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --login, spn]\n")
	_, auth, err := Load(t.Context(), Options{Content: kc, Getenv: func(k string) string { return env[k] }, HTTPClient: e.Client})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Validator()(token(t, auth)); !ok {
		t.Error("token not accepted")
	}
	if who := auth.tokens.src.identity(t.Context()); strings.Contains(who, e.Secret) || !strings.Contains(who, e.ClientID) {
		t.Errorf("identity %q", who)
	}
}
