package keycloak

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestCheckTxObjectStorePath(t *testing.T) {
	for _, tt := range []struct {
		path    string
		wantErr string
	}{
		{DefaultTxObjectStorePath, ""},
		{"/opt/keycloak/data/tx-object-store/", ""},
		{"", "empty"},
		{"/", "root directory"},
		{"//", "root directory"},
		{"/.", "root directory"},
		{"data/tx-object-store", "not an absolute path"},
		{"./tx-object-store", "not an absolute path"},
		{"/opt/jboss/../../etc", `contains ".."`},
		{"/opt/..", `contains ".."`},
		{"/opt/x\n/etc", "NUL or newline"},
	} {
		err := CheckTxObjectStorePath(tt.path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckTxObjectStorePath(%q) = %v, want nil", tt.path, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "tx-object-store-path")):
			t.Errorf("CheckTxObjectStorePath(%q) = %v, want an error naming tx-object-store-path with %q", tt.path, err, tt.wantErr)
		}
	}
	// Refused before anything else is looked at.
	_, err := TxStore{Path: "/", Config: &rest.Config{}}.Clear(t.Context(), "default", "")
	if err == nil || !strings.Contains(err.Error(), "tx-object-store-path") {
		t.Errorf("Clear with Path / = %v, want a tx-object-store-path error", err)
	}
}

func TestKeycloakContainer(t *testing.T) {
	c := func(names ...string) []corev1.Container {
		var cs []corev1.Container
		for _, n := range names {
			cs = append(cs, corev1.Container{Name: n})
		}
		return cs
	}
	for _, tt := range []struct {
		containers []corev1.Container
		want       string
	}{
		{c("metrics", "Keycloak-server", "keycloak"), "Keycloak-server"},
		{c("main", "sidecar"), "main"},
		{nil, ""},
	} {
		if got := keycloakContainer(tt.containers); got != tt.want {
			t.Errorf("keycloakContainer(%v) = %q, want %q", tt.containers, got, tt.want)
		}
	}
}

// TestClearTxObjectStore execs into kwok pods for real: the apiserver forwards pods/exec to
// the kwok controller on the node's InternalIP, and kwok runs the command on this machine
// (testdata/kwok/91-exec.yaml.tmpl). So Path is a directory of the test's own on the host,
// laid out like Keycloak's data directory, and its removal proves the exec ran.
func TestClearTxObjectStore(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	ns := kube.Namespace

	// Exec must only ever dial loopback: the apiserver is on 127.0.0.1 and reaches the kwok
	// "kubelet" through the node address.
	if !strings.Contains(kube.Config.Host, "127.0.0.1") {
		t.Fatalf("apiserver %s is not on 127.0.0.1", kube.Config.Host)
	}
	nodes, err := kube.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) == 0 {
		t.Fatal("no nodes")
	}
	for _, n := range nodes.Items {
		var ips []string
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
				ips = append(ips, a.Address)
			}
		}
		if !slices.Equal(ips, []string{"127.0.0.1"}) {
			t.Fatalf("node %s has addresses %v: exec would dial them; want only InternalIP 127.0.0.1", n.Name, ips)
		}
	}
	if fi, err := os.Stat(kube.ExecDir()); err != nil || !fi.IsDir() {
		t.Fatalf("exec directory %q: %v", kube.ExecDir(), err)
	}

	kcLabels := map[string]string{"app": "keycloak", "release": "identity"}
	pgLabels := map[string]string{"app": "postgresql-id", "release": "identity"}
	kc := statefulSet("identity-id-keycloak", 2, kcLabels)
	kc.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "metrics", Image: "example.invalid/metrics:1"},
		{Name: "keycloak", Image: "example.invalid/keycloak:12"},
	}
	pg := statefulSet("identity-postgresql-id", 1, pgLabels)
	for _, s := range []*appsv1.StatefulSet{kc, pg} {
		if _, err := kube.Client.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	manifest := manifestOf(t, pg, kc)
	waitReadyPods(t, kube.Client, ns, "app=keycloak", 2)
	waitReadyPods(t, kube.Client, ns, "app=postgresql-id", 1)

	data := filepath.Join(t.TempDir(), "standalone", "data")
	store := filepath.Join(data, "tx-object-store")
	write := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(store, "ShadowNoFileLockStore", "defaultStore", "StateManager", "BasicAction", "0_ffff7f000001"))
	write(filepath.Join(store, "readme"))
	keep := []string{
		filepath.Join(data, "content", "keep"),
		filepath.Join(data, "tx-object-store-keep"),
		filepath.Join(data, "tx-object-store.bak", "keep"),
	}
	for _, p := range keep {
		write(p)
	}

	x := TxStore{Client: kube.Client, Config: kube.Config, Path: store, Log: testLogger(t)}
	pods, err := x.Clear(ctx, ns, manifest)
	if err != nil {
		t.Fatalf("Clear: %v", err)
	}
	slices.Sort(pods)
	if want := []string{"identity-id-keycloak-0", "identity-id-keycloak-1"}; !slices.Equal(pods, want) {
		t.Errorf("Clear = %v, want %v", pods, want)
	}
	if _, err := os.Lstat(store); !os.IsNotExist(err) {
		t.Errorf("tx-object-store still there after Clear (lstat: %v)", err)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a sibling of the store is gone: %v", err)
		}
	}

	// Nothing left to delete: rm -f succeeds.
	if pods, err := x.Clear(ctx, ns, manifest); err != nil || len(pods) != 2 {
		t.Errorf("second Clear = %v, %v; want both pods, no error", pods, err)
	}

	t.Run("command fails", func(t *testing.T) {
		// A name longer than any file system allows: rm -rf fails (ENAMETOOLONG is not a
		// "nonexistent file" for -f) inside the test's own directory, touching nothing.
		bad := filepath.Join(t.TempDir(), strings.Repeat("x", 300), "tx-object-store")
		x := TxStore{Client: kube.Client, Config: kube.Config, Workload: "StatefulSet/identity-id-keycloak", Path: bad, Log: testLogger(t)}
		pods, err := x.Clear(ctx, ns, manifest)
		if err == nil {
			t.Fatalf("Clear = %v, want an error", pods)
		}
		t.Logf("error: %v", err)
		if len(pods) != 0 {
			t.Errorf("Clear reports cleared pods %v despite the failure", pods)
		}
		for _, w := range []string{
			"pod " + ns + "/identity-id-keycloak-0 container keycloak",
			"pod " + ns + "/identity-id-keycloak-1 container keycloak",
			"rm -rf -- " + bad, "stderr: rm: cannot remove", "File name too long",
		} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error does not contain %q", w)
			}
		}
		// A kubelet reports the exit code (CodeExitError: "exited with 1"); kwok v0.8.0 wraps
		// its command's error, which reaches the client as an internal error.
		if !strings.Contains(err.Error(), "exited with 1") && !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("error does not give the exit status 1")
		}
	})

	t.Run("workload not in the cluster", func(t *testing.T) {
		other := statefulSet("other-keycloak", 1, map[string]string{"app": "other-keycloak"})
		x := TxStore{Client: kube.Client, Config: kube.Config, Path: store, Log: testLogger(t)}
		_, err := x.Clear(ctx, ns, manifestOf(t, other))
		if err == nil || !strings.Contains(err.Error(), "StatefulSet/other-keycloak") {
			t.Errorf("Clear = %v, want an error naming StatefulSet/other-keycloak", err)
		}
	})
}
