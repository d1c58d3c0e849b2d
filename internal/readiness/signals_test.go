package readiness

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestParseManifest(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Service"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	const manifest = `---
# Source: identity/templates/empty.yaml
---
# Source: identity/templates/svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: identity
---
# Source: identity/templates/sts.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: identity-postgresql-id
  namespace: other
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: identity-reader
`
	got, err := parseManifest(manifest, "idm", mapper)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ id, key, resource string }{
		{"Service/identity", "idm/identity", "services"},
		{"StatefulSet/identity-postgresql-id", "other/identity-postgresql-id", "statefulsets"},
		{"ClusterRole/identity-reader", "identity-reader", "clusterroles"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d resources, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].id() != w.id || got[i].key() != w.key || got[i].gvr.Resource != w.resource {
			t.Errorf("resource %d: %s %s %s, want %s %s %s", i, got[i].id(), got[i].key(), got[i].gvr.Resource, w.id, w.key, w.resource)
		}
	}
	if got[1].workload() != true || got[0].workload() {
		t.Errorf("workload(): StatefulSet %v, Service %v", got[1].workload(), got[0].workload())
	}

	if _, err := parseManifest("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n", "idm", mapper); err == nil {
		t.Error("an unknown kind parsed without error")
	}
}

func TestDecisive(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	pod := func(statuses ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u1"},
			Status:     corev1.PodStatus{ContainerStatuses: statuses},
		}
	}
	tests := []struct {
		name   string
		first  *corev1.Pod // what the wait saw first, if not the pod itself
		pod    *corev1.Pod
		reason string // "" when nothing is decisive
		says   string // in the signal's message
	}{
		{name: "running", pod: pod(corev1.ContainerStatus{Name: "c", State: running, RestartCount: 3})},
		{name: "waiting to start", pod: pod(corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}})},
		{name: "crashloop", pod: pod(corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}), reason: "CrashLoopBackOff"},
		{name: "crashloop after an exit", pod: pod(corev1.ContainerStatus{Name: "c", RestartCount: 2,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 20s restarting failed container"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}),
			reason: "CrashLoopBackOff", says: "back-off 20s restarting failed container; last exit code 1 (Error)"},
		{name: "completed", pod: pod(corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}})},
		{name: "failed", pod: pod(corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137}}}), reason: "Terminated"},
		{
			name:   "restarted since first seen",
			first:  pod(corev1.ContainerStatus{Name: "c", State: running, RestartCount: 3}),
			pod:    pod(corev1.ContainerStatus{Name: "c", State: running, RestartCount: 4}),
			reason: "RestartCountRising",
		},
		{
			name: "unschedulable",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u2"}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/2 nodes",
			}}}},
			reason: "Unschedulable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := restarts{}
			if tt.first != nil {
				seen.observe(tt.first)
			}
			seen.observe(tt.pod)
			sig, ok := decisive(tt.pod, seen)
			if ok != (tt.reason != "") || sig.reason != tt.reason {
				t.Errorf("decisive = %q, %v; want %q", sig.reason, ok, tt.reason)
			}
			if sig.message != tt.says && tt.says != "" {
				t.Errorf("message %q, want %q", sig.message, tt.says)
			}
		})
	}
}
