package readiness

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// decisiveWaiting are the container waiting reasons that do not go away by waiting.
var decisiveWaiting = map[string]bool{
	"CrashLoopBackOff":           true,
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}

// neverStarted are the waiting reasons of a container that has not run (yet): it has no log of
// its own unless it ran before.
var neverStarted = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}

// podSignal is a decisive signal from one container (or, for Unschedulable, the pod).
type podSignal struct {
	container string
	reason    string
	message   string
	// previous says whether the container ran before (its previous log is worth reading),
	// and started whether the current one ever ran.
	previous bool
	started  bool
}

// restarts remembers each container's restart count when its pod was first seen during the
// wait, so that a rising count is noticed however fast the container comes back.
type restarts map[types.UID]map[string]int32

func (r restarts) observe(pod *corev1.Pod) {
	if _, ok := r[pod.UID]; ok {
		return
	}
	m := map[string]int32{}
	for _, cs := range allStatuses(pod) {
		m[cs.Name] = cs.RestartCount
	}
	r[pod.UID] = m
}

// first returns the restart count of a container when its pod was first seen; a container
// that had no status yet then started from zero.
func (r restarts) first(pod *corev1.Pod, container string) int32 {
	n, ok := r[pod.UID][container]
	if !ok {
		r[pod.UID][container] = 0
	}
	return n
}

func allStatuses(pod *corev1.Pod) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(pod.Status.InitContainerStatuses)+len(pod.Status.ContainerStatuses))
	out = append(out, pod.Status.InitContainerStatuses...)
	return append(out, pod.Status.ContainerStatuses...)
}

// decisive returns the pod's first decisive signal, if any. The restart counts must have
// observed the pod before.
func decisive(pod *corev1.Pod, seen restarts) (podSignal, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return podSignal{reason: "Unschedulable", message: c.Message}, true
		}
	}
	for _, cs := range allStatuses(pod) {
		ranBefore := cs.RestartCount > 0 || cs.LastTerminationState.Terminated != nil
		if w := cs.State.Waiting; w != nil && decisiveWaiting[w.Reason] {
			msg := w.Message
			if t := cs.LastTerminationState.Terminated; t != nil {
				// A back-off says that it crashed, the last termination says how.
				msg = strings.TrimPrefix(msg+"; last "+describeTerminated(t), "; ")
			}
			return podSignal{
				container: cs.Name, reason: w.Reason, message: msg,
				previous: ranBefore, started: !neverStarted[w.Reason],
			}, true
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return podSignal{
				container: cs.Name, reason: "Terminated", message: describeTerminated(t),
				previous: true, started: true,
			}, true
		}
		if first := seen.first(pod, cs.Name); cs.RestartCount > first {
			msg := fmt.Sprintf("restart count rose from %d to %d during the wait", first, cs.RestartCount)
			if t := cs.LastTerminationState.Terminated; t != nil {
				msg += "; last " + describeTerminated(t)
			}
			return podSignal{container: cs.Name, reason: "RestartCountRising", message: msg, previous: true, started: true}, true
		}
	}
	return podSignal{}, false
}

func describeTerminated(t *corev1.ContainerStateTerminated) string {
	msg := fmt.Sprintf("exit code %d", t.ExitCode)
	if t.Signal != 0 {
		msg += fmt.Sprintf(", signal %d", t.Signal)
	}
	if t.Reason != "" {
		msg += " (" + t.Reason + ")"
	}
	if t.Message != "" {
		msg += ": " + strings.TrimSpace(t.Message)
	}
	return msg
}

// describePending says why a pod is not ready yet, for a timeout's message.
func describePending(pod *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s is %s", pod.Name, pod.Status.Phase)
	if pod.Status.Phase == "" {
		b.Reset()
		fmt.Fprintf(&b, "pod %s has no status", pod.Name)
	}
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue && (c.Type == corev1.PodScheduled || c.Type == corev1.PodReady) {
			fmt.Fprintf(&b, ", %s=%s", c.Type, c.Status)
			if c.Reason != "" {
				fmt.Fprintf(&b, " (%s", c.Reason)
				if c.Message != "" {
					fmt.Fprintf(&b, ": %s", c.Message)
				}
				b.WriteString(")")
			}
		}
	}
	if pod.Spec.NodeName == "" {
		b.WriteString(", not scheduled")
	}
	for _, cs := range allStatuses(pod) {
		switch {
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, ", container %s waiting", cs.Name)
			if cs.State.Waiting.Reason != "" {
				fmt.Fprintf(&b, " (%s)", cs.State.Waiting.Reason)
			}
		case cs.State.Running != nil && !cs.Ready:
			fmt.Fprintf(&b, ", container %s running but not ready", cs.Name)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, ", container %s terminated (%s)", cs.Name, describeTerminated(cs.State.Terminated))
		}
	}
	if len(pod.Status.ContainerStatuses) == 0 && pod.Spec.NodeName != "" {
		b.WriteString(", no container has started")
	}
	return b.String()
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// selectorOf returns the workload's pod selector: from the live object when there is one (a
// Job's is generated by the apiserver), else from the manifest.
func selectorOf(live, desired *unstructured.Unstructured) (labels.Selector, error) {
	obj := desired
	if live != nil {
		obj = live
	}
	raw, found, err := unstructured.NestedMap(obj.Object, "spec", "selector")
	if err != nil {
		return nil, fmt.Errorf("spec.selector: %w", err)
	}
	if !found {
		if obj == live && desired != nil {
			return selectorOf(nil, desired)
		}
		return nil, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil, fmt.Errorf("spec.selector: %w", err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, fmt.Errorf("spec.selector: %w", err)
	}
	if sel.Empty() {
		// An empty selector would select every pod in the namespace: never what is meant.
		return nil, nil
	}
	return sel, nil
}
