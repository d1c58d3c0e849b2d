package testworld_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestClusterIsRealAndOnLoopback(t *testing.T) {
	kube := testworld.Cluster(t)

	v, err := kube.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != testworld.KubeVersion {
		t.Fatalf("apiserver reports %q, want %q (the version link flags are missing)", v.GitVersion, testworld.KubeVersion)
	}

	nodes, err := kube.Client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != testworld.NodeCount {
		t.Fatalf("%d nodes, want %d", len(nodes.Items), testworld.NodeCount)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && a.Address != "127.0.0.1" {
				t.Errorf("node %s InternalIP %s: the apiserver would dial it", n.Name, a.Address)
			}
		}
		if n.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
			t.Errorf("node %s has no kubelet endpoint: exec and logs would fail", n.Name)
		}
	}
}

func TestClusterRunsPods(t *testing.T) {
	kube := testworld.Cluster(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{
			Containers:  []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}},
			Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	if _, err := kube.Client.CoreV1().Pods(kube.Namespace).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, kube, "web", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

// waitPod polls the pod until ok holds; the world is simulated, so a minute is generous.
func waitPod(t *testing.T, kube testworld.Kube, name string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last *corev1.Pod
	for time.Now().Before(deadline) {
		p, err := kube.Client.CoreV1().Pods(kube.Namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if ok(p) {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pod %s: condition not reached within a minute; last status: %+v", name, last)
	return nil
}

// TestWorldListensOnLoopbackOnly proves the servers the world starts accept connections on
// 127.0.0.1 alone: every component of the cluster and the PostgreSQL server.
func TestWorldListensOnLoopbackOnly(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	pids, err := kube.ComponentPIDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) < 5 {
		t.Errorf("%d component processes, want etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok", len(pids))
	}
	addrs, err := testworld.ListenAddresses(append(pids, db.ServerPID))
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) < 6 {
		t.Errorf("found %d listening sockets (%v); want at least one per process", len(addrs), addrs)
	}
	for _, a := range addrs {
		if !a.Addr().IsLoopback() {
			t.Errorf("a world process listens on %s, beyond loopback", a)
		}
	}
}
