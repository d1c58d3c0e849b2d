package testworld

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeVersion is the version of the simulated cluster's control plane. These versions match
// tools/build.sh, which builds and caches the binaries under these names.
const (
	KubeVersion = "v1.37.2"
	etcdVersion = "v3.6.16"
	kwokVersion = "v0.8.0"
	// kwokBuild names tools/build.sh's kwok, which deletes pods by UID (see kwok_overlay there).
	kwokBuild = kwokVersion + "-uid"
)

// NodeCount is how many kwok nodes the harness creates.
const NodeCount = 2

// Kube is one test's view of the binary's shared simulated cluster.
type Kube struct {
	// Kubeconfig is the path of an admin kubeconfig; KubeconfigData is its content.
	Kubeconfig     string
	KubeconfigData []byte
	// Namespace is created for the test and deleted when it ends.
	Namespace string
	Config    *rest.Config
	Client    kubernetes.Interface

	cluster *KubeCluster
}

// ExecDir is the host directory in which a command exec'd into any container of a kwok pod
// runs (testdata/kwok/91-exec.yaml.tmpl): kwok runs it on this machine, as this user, not in a
// container. Tests that exec must only touch paths they own (a t.TempDir()).
func (k Kube) ExecDir() string { return k.cluster.execDir }

// KeycloakHome is the Keycloak home of every kwok pod: the JBOSS_HOME of commands exec'd into
// them (testdata/kwok/91-exec.yaml.tmpl), in ExecDir. Its themes directory plays the pods'
// themes directory; it is shared by every pod of the cluster, so a test names its themes
// uniquely.
func (k Kube) KeycloakHome() string { return filepath.Join(k.cluster.execDir, "keycloak") }

// keycloakHome lays out the Keycloak home every kwok pod has as its JBOSS_HOME: a themes
// directory with the themes Keycloak and the Identity Service's image bring.
func keycloakHome(home string) error {
	for _, theme := range append(slices.Clone(KeycloakBuiltinThemes), "alfresco") {
		dir := filepath.Join(home, "themes", theme, "login")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "theme.properties"), []byte("parent=base\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ComponentPIDs returns the process ids of the cluster's components (etcd, apiserver,
// controller-manager, scheduler, kwok).
func (k Kube) ComponentPIDs() ([]int, error) { return k.cluster.PIDs() }

type KubeCluster struct {
	name       string
	workdir    string
	kwokctl    string
	kubeconfig string
	execDir    string
	data       []byte
	config     *rest.Config
	client     kubernetes.Interface
	namespaces atomic.Int64
	// relay serves the port-forwards to PodPostgresPort (portforward.go); nil for a stale
	// cluster being removed.
	relay *relay
	// clones serve the port-forwards of the clone namespaces (clone.go).
	clones *clones
	// tokens answers the API server's token reviews (tokenwebhook.go); nil for a stale cluster.
	tokens *tokenWebhook
}

// Cluster gives the test a namespace of its own in the binary's shared simulated cluster,
// building the control-plane binaries and starting the cluster on first use. The namespace is
// deleted when the test ends.
func Cluster(t testing.TB) Kube {
	t.Helper()
	c, err := shared.kube()
	if err != nil {
		t.Fatalf("testworld: cluster: %v", err)
	}
	ns := fmt.Sprintf("t%d-%s", c.namespaces.Add(1), strings.Trim(strings.ReplaceAll(sanitize(t.Name(), 40), "_", "-"), "-"))
	kube, err := c.CreateNamespace(context.Background(), ns)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	t.Cleanup(func() {
		err := c.client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("testworld: delete namespace: %v", err)
		}
	})
	return kube
}

// CreateNamespace creates a namespace and waits for its default service account, which pods
// need and a controller creates.
func (c *KubeCluster) CreateNamespace(ctx context.Context, ns string) (Kube, error) {
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
	}, metav1.CreateOptions{}); err != nil {
		return Kube{}, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return Kube{}, fmt.Errorf("namespace %s has no default service account: %w", ns, err)
	}
	return Kube{
		Kubeconfig: c.kubeconfig, KubeconfigData: c.data, Namespace: ns,
		Config: rest.CopyConfig(c.config), Client: c.client, cluster: c,
	}, nil
}

func (w *world) kube() (*KubeCluster, error) { return w.cluster.get(StartCluster) }

// RepoRoot finds the repository root from the working directory (a test runs in its package
// directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "build.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (with tools/build.sh) not found above the working directory")
		}
		dir = parent
	}
}

// Tools builds the control-plane binaries if they are not cached yet and returns the cache
// directory. The build script locks, so parallel test binaries build once.
func Tools() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "tools", "build.sh"))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	// The first build takes minutes: its progress goes straight to the terminal.
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build control-plane binaries (tools/build.sh): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

const clusterPrefix = "testworld-kwok-"

// StartCluster starts a simulated cluster whose port-forwards to PodPostgresPort reach the
// binary's shared PostgreSQL server; Stop removes it.
func StartCluster() (*KubeCluster, error) { return startCluster(sharedPostgresAddr, clusterOptions{}) }

// StartClusterForPostgres starts a simulated cluster as StartCluster does, except that
// port-forwards to PodPostgresPort of its pods reach srv, a server of the caller's: a
// release installed with its bundled PostgreSQL then has srv as its database.
func StartClusterForPostgres(srv *PostgresServer) (*KubeCluster, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port))
	return startCluster(func() (string, error) { return addr, nil }, clusterOptions{})
}

// clusterOptions change how a cluster's control plane runs.
type clusterOptions struct {
	// survivesAPIServerRestart runs the controller manager and the scheduler without leader
	// election: with it, each exits when it cannot renew its lease while the API server is
	// down, and nothing here starts it again (a kubelet would, for static pods).
	survivesAPIServerRestart bool
}

// startCluster starts a cluster whose relay passes port-forwards to PodPostgresPort on to the
// address postgres returns.
func startCluster(postgres func() (string, error), opts clusterOptions) (*KubeCluster, error) {
	cache, err := Tools()
	if err != nil {
		return nil, err
	}
	root, _ := RepoRoot()
	bin := func(component, version, name string) string {
		return filepath.Join(cache, component+"-"+version, name)
	}
	kwokctl := bin("kwok", kwokBuild, "kwokctl")

	// Starting is serialised across test binaries: kwokctl picks its ports by probing, and two
	// clusters starting at once could pick the same ones.
	unlock, err := lockFile(filepath.Join(cache, ".start.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	reapStaleClusters(kwokctl)

	workdir, err := os.MkdirTemp("", clusterPrefix)
	if err != nil {
		return nil, err
	}
	if err := writeOwner(workdir); err != nil {
		return nil, err
	}
	c := &KubeCluster{
		name:       "tw" + strconv.Itoa(os.Getpid()),
		workdir:    workdir,
		kwokctl:    kwokctl,
		kubeconfig: filepath.Join(workdir, "kubeconfig"),
		execDir:    filepath.Join(workdir, "exec"),
	}
	if err := os.Mkdir(c.execDir, 0o755); err != nil {
		return nil, err
	}
	if err := keycloakHome(filepath.Join(c.execDir, "keycloak")); err != nil {
		return nil, err
	}
	if c.relay, err = startRelay(postgres); err != nil {
		return nil, err
	}
	if c.clones, err = startClones(); err != nil {
		c.relay.close()
		return nil, err
	}
	if c.tokens, err = startTokenWebhook(); err != nil {
		c.relay.close()
		c.clones.close()
		return nil, err
	}
	webhookConfig, err := c.tokens.kubeconfig(workdir)
	if err != nil {
		c.relay.close()
		c.clones.close()
		c.tokens.close()
		return nil, err
	}
	conf, err := clusterConfig(templateData{Root: root, ExecDir: c.execDir, PostgresRelayPort: c.relay.port(), Clones: c.clones.forwards(),
		TokenWebhookConfig: webhookConfig}, opts, map[string]string{
		"kubeApiserverBinary":         bin("kubernetes", KubeVersion, "kube-apiserver"),
		"kubeControllerManagerBinary": bin("kubernetes", KubeVersion, "kube-controller-manager"),
		"kubeSchedulerBinary":         bin("kubernetes", KubeVersion, "kube-scheduler"),
		"kubectlBinary":               bin("kubernetes", KubeVersion, "kubectl"),
		"etcdBinary":                  bin("etcd", etcdVersion, "etcd"),
		"kwokControllerBinary":        bin("kwok", kwokBuild, "kwok"),
	})
	if err != nil {
		c.relay.close()
		c.clones.close()
		c.tokens.close()
		return nil, err
	}
	confPath := filepath.Join(workdir, "kwokctl.yaml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		c.relay.close()
		c.clones.close()
		c.tokens.close()
		return nil, err
	}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "testworld: starting simulated cluster %s (Kubernetes %s, kwok nodes) ...\n", c.name, KubeVersion)
	if out, err := c.run(context.Background(), "create", "cluster",
		"--config", confPath, "--kubeconfig", c.kubeconfig, "--wait", "2m", "--timeout", "5m"); err != nil {
		c.Stop()
		return nil, fmt.Errorf("kwokctl create cluster: %w: %s", err, tail(out))
	}
	if err := c.connect(); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.createNodes(context.Background()); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.createVolumes(context.Background()); err != nil {
		c.Stop()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "testworld: cluster %s ready in %s\n", c.name, time.Since(start).Round(100*time.Millisecond))
	return c, nil
}

// templateData is what the testdata/kwok/*.yaml.tmpl documents may use.
type templateData struct {
	// Root is the repository root.
	Root string
	// ExecDir is the working directory of commands exec'd into kwok pods.
	ExecDir string
	// PostgresRelayPort is the port on 127.0.0.1 that port-forwards to PodPostgresPort reach.
	PostgresRelayPort int
	// Clones are the relays of the clone namespaces' port-forwards.
	Clones cloneForwards
	// TokenWebhookConfig is the kubeconfig naming the token webhook (tokenwebhook.go).
	TokenWebhookConfig string
}

// clusterConfig is the kwokctl configuration: the binaries, every component bound to
// loopback, the apiserver dialling nodes by their InternalIP (127.0.0.1) and asking the test
// binary's token webhook, uncached, about bearer tokens it does not know, the kwok stages
// of testdata/kwok (defaults plus the fault injectors) and its other kwok documents (logs,
// exec).
func clusterConfig(data templateData, opts clusterOptions, binaries map[string]string) ([]byte, error) {
	root := data.Root
	var b bytes.Buffer
	b.WriteString("apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n")
	b.WriteString("  runtime: binary\n  bindAddress: 127.0.0.1\n  kubeAuthorization: true\n")
	b.WriteString("  kubeVersion: " + KubeVersion + "\n")
	keys := make([]string, 0, len(binaries))
	for k := range binaries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := os.Stat(binaries[k]); err != nil {
			return nil, fmt.Errorf("control-plane binary missing: %w", err)
		}
		fmt.Fprintf(&b, "  %s: %q\n", k, binaries[k])
	}
	b.WriteString(`componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: kubelet-preferred-address-types
    value: InternalIP
`)
	if data.TokenWebhookConfig != "" {
		fmt.Fprintf(&b, `  - key: authentication-token-webhook-config-file
    value: %q
  - key: authentication-token-webhook-version
    value: v1
  - key: authentication-token-webhook-cache-ttl
    value: 0s
`, data.TokenWebhookConfig)
	}
	if opts.survivesAPIServerRestart {
		b.WriteString(`- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
`)
	}
	b.WriteString(`---
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  nodeIP: 127.0.0.1
  # A KwokConfiguration given here is not defaulted: these are kwok's own defaults.
  nodeLeaseParallelism: 4
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  podsOnNodeSyncParallelism: 1
  # Serve exec, logs and port-forward on the kubelet endpoint (kwok's default, but not applied
  # here): without it the apiserver gets 405 MethodNotAllowed for pods/log and pods/exec.
  enableDebuggingHandlers: true
`)
	stages, err := filepath.Glob(filepath.Join(root, "testdata", "kwok", "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(stages)
	for _, p := range stages {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(bytes.TrimPrefix(data, []byte("---\n")))
		b.WriteString("\n")
	}
	// Documents that name files (ClusterLogs' logsFile, ClusterExec's workDir): kwok wants
	// absolute paths, so these are templates with {{ .Root }} the repository root and
	// {{ .ExecDir }} the exec directory. They are not Stages, and the stage checks of
	// internal/helmrelease read only *.yaml.
	templates, err := filepath.Glob(filepath.Join(root, "testdata", "kwok", "*.yaml.tmpl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(templates)
	for _, p := range templates {
		tmpl, err := template.ParseFiles(p)
		if err != nil {
			return nil, err
		}
		tmpl.Option("missingkey=error")
		b.WriteString("---\n")
		if err := tmpl.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("expand %s: %w", p, err)
		}
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

func (c *KubeCluster) run(ctx context.Context, args ...string) ([]byte, error) {
	args = append(args, "--name", c.name)
	cmd := exec.CommandContext(ctx, c.kwokctl, args...)
	cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+c.workdir)
	return cmd.CombinedOutput()
}

func (c *KubeCluster) connect() error {
	data, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return fmt.Errorf("parse kubeconfig: %w", err)
	}
	if !strings.Contains(cfg.Host, "127.0.0.1") && !strings.Contains(cfg.Host, "localhost") {
		return fmt.Errorf("apiserver %s is not on loopback", cfg.Host)
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c.data, c.config, c.client = data, cfg, client
	return nil
}

// createNodes registers the kwok nodes with 127.0.0.1 as their only InternalIP: the apiserver
// dials a node's address for exec, logs and port-forward, which must never leave loopback.
func (c *KubeCluster) createNodes(ctx context.Context) error {
	for i := range NodeCount {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
					"kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent",
				},
			},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "kwok.x-k8s.io/node", Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{
				Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110"),
				},
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110"),
				},
			},
		}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP && a.Address != "127.0.0.1" {
					return false, fmt.Errorf("node %s has InternalIP %s, want only 127.0.0.1", n.Name, a.Address)
				}
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == NodeCount, nil
	})
}

// VolumeCount is how many PersistentVolumes the harness provides. The cluster has no
// provisioner: claims without a storage class bind to these (the charts' hook backup claims
// and volumeClaimTemplates need them), and nothing is ever written to them.
const VolumeCount = 64

func (c *KubeCluster) createVolumes(ctx context.Context) error {
	for i := range VolumeCount {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("testworld-pv-%02d", i), Labels: map[string]string{"type": "kwok"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              "",
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: fmt.Sprintf("/nonexistent/testworld-pv-%02d", i)},
				},
			},
		}
		if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create persistent volume: %w", err)
		}
	}
	return nil
}

func (c *KubeCluster) Stop() error {
	defer os.RemoveAll(c.workdir)
	if c.relay != nil {
		defer c.relay.close()
	}
	if c.clones != nil {
		defer c.clones.close()
	}
	if c.tokens != nil {
		defer c.tokens.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := c.run(ctx, "delete", "cluster"); err != nil {
		return fmt.Errorf("kwokctl delete cluster: %w: %s", err, tail(out))
	}
	return nil
}

// reapStaleClusters deletes clusters left behind by test binaries that were killed before they
// could clean up (their owner process is gone).
func reapStaleClusters(kwokctl string) {
	for _, dir := range staleDirs(clusterPrefix) {
		pid, _ := owner(dir)
		stale := &KubeCluster{name: "tw" + strconv.Itoa(pid), workdir: dir, kwokctl: kwokctl}
		if err := stale.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testworld: remove stale cluster %s: %v\n", stale.name, err)
		}
	}
}

// reapStaleDirs removes the directories of servers whose test binary was killed (the servers
// themselves died with it).
func reapStaleDirs(prefix string) {
	for _, dir := range staleDirs(prefix) {
		os.RemoveAll(dir)
	}
}

// staleDirs lists the world directories with prefix whose owner process is gone.
func staleDirs(prefix string) []string {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	var stale []string
	for _, dir := range dirs {
		if pid, err := owner(dir); err == nil && !processAlive(pid) {
			stale = append(stale, dir)
		}
	}
	return stale
}

// writeOwner records this process as the owner of a world directory.
func writeOwner(dir string) error {
	return os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

func owner(dir string) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lockFile takes an exclusive lock on path, shared by every process on the machine.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
