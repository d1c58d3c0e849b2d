package kubeauth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestRecognise(t *testing.T) {
	tests := []struct {
		name string
		exec clientcmdapi.ExecConfig
		want plugin
		ok   bool
	}{
		{"aws eks update-kubeconfig", clientcmdapi.ExecConfig{Command: "aws",
			Args: []string{"--region", "eu-west-1", "eks", "get-token", "--cluster-name", "identity", "--output", "json"}},
			plugin{provider: AWS, command: "aws", cluster: "identity", region: "eu-west-1"}, true},
		{"aws eks update-kubeconfig --role-arn --profile", clientcmdapi.ExecConfig{Command: "aws",
			Args: []string{"--region", "us-east-1", "eks", "get-token", "--cluster-name", "c", "--output", "json", "--role-arn", "arn:aws:iam::111122223333:role/deploy"},
			Env:  []clientcmdapi.ExecEnvVar{{Name: "AWS_PROFILE", Value: "ci"}}},
			plugin{provider: AWS, command: "aws", cluster: "c", region: "us-east-1", role: "arn:aws:iam::111122223333:role/deploy", profile: "ci"}, true},
		{"aws-iam-authenticator", clientcmdapi.ExecConfig{Command: "aws-iam-authenticator", Args: []string{"token", "-i", "c", "-r", "arn:aws:iam::1:role/r"}},
			plugin{provider: AWS, command: "aws-iam-authenticator", cluster: "c", role: "arn:aws:iam::1:role/r"}, true},
		{"gke-gcloud-auth-plugin", clientcmdapi.ExecConfig{Command: "gke-gcloud-auth-plugin"},
			plugin{provider: GCP, command: "gke-gcloud-auth-plugin"}, true},
		{"kubelogin", clientcmdapi.ExecConfig{Command: "kubelogin", Args: []string{"get-token", "--environment", "AzurePublicCloud",
			"--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630", "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", "t", "--login", "devicecode"}},
			plugin{provider: Azure, command: "kubelogin", serverID: "6dae42f8-4368-4678-94ff-3960e28e3630", tenantID: "t", environment: "AzurePublicCloud", login: "devicecode"}, true},
		{"kubelogin by path", clientcmdapi.ExecConfig{Command: "/usr/local/bin/kubelogin", Args: []string{"get-token", "--server-id=s"}},
			plugin{provider: Azure, command: "/usr/local/bin/kubelogin", serverID: "s"}, true},
		{"aws s3", clientcmdapi.ExecConfig{Command: "aws", Args: []string{"s3", "ls"}}, plugin{}, false},
		{"kubelogin oidc-login", clientcmdapi.ExecConfig{Command: "kubelogin", Args: []string{"convert-kubeconfig"}}, plugin{}, false},
		{"oidc-login", clientcmdapi.ExecConfig{Command: "kubectl-oidc_login", Args: []string{"get-token"}}, plugin{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := recognise(&tt.exec)
			if ok != tt.ok {
				t.Fatalf("recognised %v, want %v", ok, tt.ok)
			}
			if ok && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// kubeconfigWith is a kubeconfig whose user runs exec, for a cluster called cluster.
func kubeconfigWith(cluster, exec string) []byte {
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: ` + cluster + `
  cluster:
    server: https://127.0.0.1:6443
contexts:
- name: ctx
  context:
    cluster: ` + cluster + `
    user: u
current-context: ctx
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
` + exec)
}

func TestUnknownPlugin(t *testing.T) {
	kc := kubeconfigWith("c", "      command: pinniped-cli-not-installed\n      args: [login, oidc]\n")
	_, _, err := Load(t.Context(), Options{Content: kc, Getenv: func(string) string { return "" }})
	if !errors.Is(err, ErrUnknownPlugin) {
		t.Fatalf("error %v, want ErrUnknownPlugin", err)
	}
	for _, want := range []string{`"pinniped-cli-not-installed"`, "cluster-auth", "aws, gcp, azure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}

	// The same plugin installed (a CLI user's machine): client-go runs it, as kubectl would.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pinniped-cli-not-installed"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cc, auth, err := Load(t.Context(), Options{Content: kc, Getenv: func(k string) string { return map[string]string{"PATH": dir}[k] }})
	if err != nil || auth != nil {
		t.Fatalf("installed plugin: auth %v, error %v; want the kubeconfig as it is", auth, err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil || cfg.ExecProvider == nil || cfg.ExecProvider.Command != "pinniped-cli-not-installed" {
		t.Fatalf("installed plugin: exec provider %+v, error %v", cfg.ExecProvider, err)
	}
}

func TestProviderConflictsWithPlugin(t *testing.T) {
	kc := kubeconfigWith("c", "      command: gke-gcloud-auth-plugin\n")
	_, _, err := Load(t.Context(), Options{Provider: AWS, Content: kc})
	if err == nil || !strings.Contains(err.Error(), "cluster-auth is aws, but the kubeconfig's user runs gke-gcloud-auth-plugin, a gcp credential plugin") {
		t.Fatalf("error %v", err)
	}
	if _, _, err := Load(t.Context(), Options{Provider: "okta", Content: kc}); err == nil || !strings.Contains(err.Error(), "kubeconfig, aws, gcp, azure") {
		t.Fatalf("unknown provider: error %v", err)
	}
}

func TestWorkspacePath(t *testing.T) {
	container := t.TempDir()
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": container,
		"RUNNER_WORKSPACE": "/home/runner/work/identity", "GITHUB_REPOSITORY": "example/identity"}
	ws := WorkspaceFromEnv(func(k string) string { return env[k] })
	if ws.Runner != "/home/runner/work/identity/identity" || ws.Container != container {
		t.Fatalf("workspace %+v", ws)
	}
	for in, want := range map[string]string{
		"/home/runner/work/identity/identity/gha-creds-1.json": filepath.Join(container, "gha-creds-1.json"),
		"/home/runner/work/identity/identity":                  container,
		"kube/config":                                          "kube/config",
		filepath.Join(container, "k"):                          filepath.Join(container, "k"),
		"/etc/hostname":                                        "/etc/hostname", // what the container has
	} {
		if got, err := ws.Path(in); err != nil || got != want {
			t.Errorf("Path(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ws.Path("/home/runner/.kube/config")
	if !errors.Is(err, ErrOutsideWorkspace) || !strings.Contains(err.Error(), "/home/runner/.kube/config") || !strings.Contains(err.Error(), "/home/runner/work/identity/identity") {
		t.Errorf("outside: %v", err)
	}
	// Not in a container: the runner's paths are the paths.
	env["GITHUB_WORKSPACE"] = "/home/runner/work/identity/identity"
	if ws := WorkspaceFromEnv(func(k string) string { return env[k] }); ws != (Workspace{}) {
		t.Errorf("run step: workspace %+v, want none", ws)
	}
}

func TestKubeconfigPathOutsideWorkspace(t *testing.T) {
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": t.TempDir(),
		"RUNNER_WORKSPACE": "/home/runner/work/identity", "GITHUB_REPOSITORY": "example/identity"}
	_, _, err := Load(t.Context(), Options{Path: "/home/runner/work/_temp/kubeconfig_1712", Getenv: func(k string) string { return env[k] }})
	if !errors.Is(err, ErrOutsideWorkspace) || !strings.HasPrefix(err.Error(), "kubeconfig-path: /home/runner/work/_temp/kubeconfig_1712 is outside the workspace") {
		t.Fatalf("error %v", err)
	}
}
