package kubeforward

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
)

// target is where one connection goes: a pod that runs and is ready, and its container port.
type target struct {
	pod  *corev1.Pod
	port int32
	// how says how the pod was chosen, for the log ("selected by statefulset/db").
	how string
	// unready is set when the pod runs but is not ready: no ready one was there.
	unready bool
}

// NotFoundError is a target that does not exist: the Service, or the pod of a pod target.
type NotFoundError struct{ Spec forwardspec.Spec }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s does not exist", e.Spec.Kind+"/"+e.Spec.Name)
}

// resolver finds the pod behind a Spec, now.
type resolver struct {
	client    kubernetes.Interface
	namespace string
	spec      forwardspec.Spec
	// wait bounds how long one resolution waits for a pod to run and be ready.
	wait time.Duration
	// poll is the interval between looks.
	poll time.Duration
}

// resolve waits (up to r.wait) for the target's pod to be Running and Ready and not being
// deleted (or only Running, when no pod of the target is Ready), then returns it with the
// container port to dial. With failFast (the first look, at
// the start) a Service or pod that does not exist fails at once: it is misnamed. Later a
// missing one is waited for, as a rollback may be re-creating it.
func (r resolver) resolve(ctx context.Context, failFast bool) (target, error) {
	var t target
	var why string
	first := true
	err := wait.PollUntilContextTimeout(ctx, r.poll, r.wait, true, func(ctx context.Context) (bool, error) {
		found, state, err := r.look(ctx)
		switch {
		case err == nil:
			t, why = found, state
			return state == "", nil
		case first && failFast && isNotFound(err):
			return false, err
		case isNotFound(err):
			why = err.Error()
			first = false
			return false, nil
		case permanent(err):
			return false, err
		default:
			// The API server busy, a request cut short: look again, keeping what the last
			// answer said.
			if why == "" {
				why = err.Error()
			}
			first = false
			return false, nil
		}
	})
	var nf *NotFoundError
	switch {
	case err == nil:
		return t, nil
	case errors.As(err, &nf):
		return target{}, err
	case ctx.Err() == nil && wait.Interrupted(err):
		return target{}, fmt.Errorf("%s: no pod ready to forward to within %s: %s", r.spec, r.wait, why)
	default:
		return target{}, fmt.Errorf("%s: %w", r.spec, err)
	}
}

func isNotFound(err error) bool {
	var nf *NotFoundError
	return errors.As(err, &nf)
}

// targetError is a target that cannot be forwarded to as it is (no selector, no such port).
type targetError struct{ msg string }

func (e *targetError) Error() string { return e.msg }

func targetErrorf(format string, args ...any) error {
	return &targetError{msg: fmt.Sprintf(format, args...)}
}

// permanent reports whether looking again cannot help: the target is unusable, or the user
// may not look.
func permanent(err error) bool {
	var te *targetError
	return errors.As(err, &te) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
}

// look is one look at the target: the pod and port, or why there is none yet ("" when ready).
func (r resolver) look(ctx context.Context) (target, string, error) {
	if r.spec.Kind == forwardspec.KindStatefulSet {
		return r.lookStatefulSet(ctx)
	}
	if r.spec.Kind == forwardspec.KindPod {
		pod, err := r.client.CoreV1().Pods(r.namespace).Get(ctx, r.spec.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return target{}, "", &NotFoundError{Spec: r.spec}
		}
		if err != nil {
			return target{}, "", err
		}
		why := notReady(pod)
		if why != "" && why != runningNotReady {
			return target{}, fmt.Sprintf("pod %s is %s", pod.Name, why), nil
		}
		port, err := podPort(pod, r.spec.Port)
		if err != nil {
			return target{}, "", err
		}
		if why == runningNotReady {
			return target{pod: pod, port: port, how: "named; " + runningNotReady, unready: true}, "", nil
		}
		return target{pod: pod, port: port, how: "named"}, "", nil
	}

	svc, err := r.client.CoreV1().Services(r.namespace).Get(ctx, r.spec.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return target{}, "", &NotFoundError{Spec: r.spec}
	}
	if err != nil {
		return target{}, "", err
	}
	if len(svc.Spec.Selector) == 0 {
		return target{}, "", targetErrorf("service %s has no selector, so no pods to forward to; name the pod as pod/NAME", svc.Name)
	}
	sp, err := servicePort(svc, r.spec.Port)
	if err != nil {
		return target{}, "", err
	}
	list, err := r.client.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String(),
	})
	if err != nil {
		return target{}, "", err
	}
	pods := list.Items
	// The newest ready pod first: during a re-create an old pod may linger as it goes.
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	var states []string
	var running *corev1.Pod
	for i := range pods {
		pod := &pods[i]
		if why := notReady(pod); why != "" {
			states = append(states, pod.Name+" "+why)
			if why == runningNotReady && running == nil {
				running = pod
			}
			continue
		}
		port, ok := targetPort(sp, pod.Spec.Containers)
		if !ok {
			return target{}, "", targetErrorf("service %s port %d targets the port %q, which pod %s does not declare", svc.Name, sp.Port, sp.TargetPort.StrVal, pod.Name)
		}
		return target{pod: pod, port: port, how: "selected by service/" + svc.Name}, "", nil
	}
	if running != nil {
		port, ok := targetPort(sp, running.Spec.Containers)
		if !ok {
			return target{}, "", targetErrorf("service %s port %d targets the port %q, which pod %s does not declare", svc.Name, sp.Port, sp.TargetPort.StrVal, running.Name)
		}
		return target{pod: running, port: port, how: "selected by service/" + svc.Name + "; " + runningNotReady + ": no ready pod", unready: true}, "", nil
	}
	if len(states) == 0 {
		return target{}, fmt.Sprintf("service %s selects no pod", svc.Name), nil
	}
	return target{}, fmt.Sprintf("service %s has no ready pod (%s)", svc.Name, strings.Join(states, "; ")), nil
}

// lookStatefulSet finds the pod of a StatefulSet target: one of the pods named
// <statefulset>-<ordinal>, those the live StatefulSet's selector selects first, then those
// that carry its pods' names but not its labels (orphaned by a re-create: after a failed
// upgrade or rollback the live StatefulSet and its pod may be of different versions). Among
// them the lowest ordinal, then the newest. A Service is never asked: its selector may be
// the other version's.
func (r resolver) lookStatefulSet(ctx context.Context) (target, string, error) {
	var selector labels.Selector
	sts, err := r.client.AppsV1().StatefulSets(r.namespace).Get(ctx, r.spec.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sts = nil // orphan-deleted for a re-create: its pods keep their names
	case err != nil:
		return target{}, "", err
	default:
		if selector, err = metav1.LabelSelectorAsSelector(sts.Spec.Selector); err != nil {
			return target{}, "", targetErrorf("statefulset %s: selector: %v", sts.Name, err)
		}
	}
	list, err := r.client.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return target{}, "", err
	}
	type candidate struct {
		pod      *corev1.Pod
		ordinal  int
		selected bool
	}
	var cands []candidate
	for i := range list.Items {
		pod := &list.Items[i]
		ordinal, ok := podOrdinal(r.spec.Name, pod.Name)
		if !ok {
			continue
		}
		cands = append(cands, candidate{pod, ordinal, selector != nil && selector.Matches(labels.Set(pod.Labels))})
	}
	if sts == nil && len(cands) == 0 {
		return target{}, "", &NotFoundError{Spec: r.spec}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		switch {
		case a.selected != b.selected && a.selected:
			return -1
		case a.selected != b.selected:
			return 1
		case a.ordinal != b.ordinal:
			return a.ordinal - b.ordinal
		}
		return b.pod.CreationTimestamp.Compare(a.pod.CreationTimestamp.Time)
	})
	how := func(c candidate) string {
		switch {
		case sts == nil:
			return "named like the pods of statefulset/" + r.spec.Name + ", which does not exist now"
		case !c.selected:
			return "named like the pods of statefulset/" + r.spec.Name + ", whose selector does not select it (orphaned)"
		}
		return "selected by statefulset/" + r.spec.Name
	}
	var states []string
	var running *candidate
	for i, c := range cands {
		if why := notReady(c.pod); why != "" {
			states = append(states, c.pod.Name+" "+why)
			if why == runningNotReady && running == nil {
				running = &cands[i]
			}
			continue
		}
		port, err := podPort(c.pod, r.spec.Port)
		if err != nil {
			return target{}, "", err
		}
		return target{pod: c.pod, port: port, how: how(c)}, "", nil
	}
	if running != nil {
		port, err := podPort(running.pod, r.spec.Port)
		if err != nil {
			return target{}, "", err
		}
		return target{pod: running.pod, port: port, how: how(*running) + "; " + runningNotReady + ": no ready pod", unready: true}, "", nil
	}
	if len(states) == 0 {
		return target{}, fmt.Sprintf("statefulset %s has no pod", r.spec.Name), nil
	}
	return target{}, fmt.Sprintf("statefulset %s has no ready pod (%s)", r.spec.Name, strings.Join(states, "; ")), nil
}

// podOrdinal reads the ordinal of a StatefulSet's pod name, <statefulset>-<ordinal>.
func podOrdinal(statefulSet, pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, statefulSet+"-")
	if !ok || rest == "" || strings.TrimLeft(rest, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// runningNotReady is the state of a pod that runs but is not ready: a PostgreSQL pod whose
// readiness probe fails (a slow check, a probe that no longer fits) may well serve the
// database, and a forward takes it when no pod is ready.
const runningNotReady = "running but not ready"

// notReady says why a pod cannot take a forward yet, or "".
func notReady(pod *corev1.Pod) string {
	switch {
	case pod.DeletionTimestamp != nil:
		return "being deleted"
	case pod.Spec.NodeName == "":
		return "not scheduled yet"
	case pod.Status.Phase != corev1.PodRunning:
		return "in phase " + string(pod.Status.Phase)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return ""
		}
	}
	return runningNotReady
}

// servicePort picks the Service port named by want (number or name), or PostgreSQL's.
func servicePort(svc *corev1.Service, want string) (corev1.ServicePort, error) {
	var names []string
	for _, p := range svc.Spec.Ports {
		names = append(names, strconv.Itoa(int(p.Port))+"/"+p.Name)
		if want != "" && (want == p.Name || want == strconv.Itoa(int(p.Port))) {
			return p, nil
		}
	}
	if want == "" {
		if port, ok := servicePostgresPort(svc, nil); ok {
			for _, p := range svc.Spec.Ports {
				if p.Port == port {
					return p, nil
				}
			}
		}
		return corev1.ServicePort{}, targetErrorf("service %s has no PostgreSQL port among %v; name one as service/%s:PORT", svc.Name, names, svc.Name)
	}
	return corev1.ServicePort{}, targetErrorf("service %s has no port %s (it has %v)", svc.Name, want, names)
}

// podPort is the pod's container port named by want (number or name), or PostgreSQL's.
func podPort(pod *corev1.Pod, want string) (int32, error) {
	if want == "" {
		if p, ok := containerPostgresPort(pod.Spec.Containers); ok {
			return p, nil
		}
		return PostgresPort, nil
	}
	if n, err := strconv.Atoi(want); err == nil {
		return int32(n), nil
	}
	if p, ok := namedPort(want, pod.Spec.Containers); ok {
		return p, nil
	}
	return 0, targetErrorf("pod %s declares no port named %s", pod.Name, want)
}
