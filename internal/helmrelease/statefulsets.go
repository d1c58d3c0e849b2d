package helmrelease

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// OrphanStatefulSets deletes the named StatefulSets of the client's namespace with propagation
// Orphan (kubectl delete --cascade=orphan): their pods and claims stay, so that an upgrade can
// create them again with a changed immutable field. It waits, bounded by ctx, until each is gone
// (the garbage collector first releases the pods); missing ones are ignored.
func (c *Client) OrphanStatefulSets(ctx context.Context, names []string) error {
	sets := c.kube.AppsV1().StatefulSets(c.namespace)
	orphan := metav1.DeletePropagationOrphan
	deleted := map[string]types.UID{}
	for _, name := range names {
		sts, err := sets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("orphan StatefulSet %s: %w", name, err)
		}
		err = sets.Delete(ctx, name, metav1.DeleteOptions{
			PropagationPolicy: &orphan,
			Preconditions:     &metav1.Preconditions{UID: &sts.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("orphan StatefulSet %s: %w", name, err)
		}
		deleted[name] = sts.UID
		c.log.Info("deleted StatefulSet, orphaning its pods", "statefulset", name, "namespace", c.namespace)
	}
	for _, name := range names {
		uid, ok := deleted[name]
		if !ok {
			continue
		}
		// Gone means not found, or found with another UID (someone created it again).
		err := pollBackoff().Until(ctx, true, true, func(ctx context.Context) (bool, error) {
			sts, err := sets.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			return sts.UID != uid, nil
		})
		if err != nil && err == ctx.Err() {
			err = context.Cause(ctx)
		}
		if err != nil {
			return fmt.Errorf("wait for StatefulSet %s to be deleted: %w", name, err)
		}
	}
	return nil
}

// ReplaceOrphanedPods deletes, for each named StatefulSet of the client's namespace, the pods
// named <statefulset>-<ordinal> that its selector does not match: after an orphan re-create
// with a new selector, the orphaned pod keeps the old labels and its name, so the new
// StatefulSet cannot create its own and stays unready until it is deleted. Volumes stay. Pods
// controlled by another object are left alone. A StatefulSet that does not exist is skipped:
// nothing re-created it (a rollback that failed before, or whose cleanup deleted it), and its
// orphaned pods are all that is left of it. It returns the pods it deleted, and does not wait
// for their replacements (readiness does), only for them to go before it asks the StatefulSet
// to create its own (resync).
func (c *Client) ReplaceOrphanedPods(ctx context.Context, names []string) ([]string, error) {
	var replaced []string
	for _, name := range names {
		sts, err := c.kube.AppsV1().StatefulSets(c.namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			c.log.Warn("StatefulSet not re-created: its orphaned pods stay", "statefulset", name, "namespace", c.namespace)
			continue
		}
		if err != nil {
			return replaced, fmt.Errorf("replace orphaned pods of StatefulSet %s: %w", name, err)
		}
		selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
		if err != nil {
			return replaced, fmt.Errorf("replace orphaned pods of StatefulSet %s: selector: %w", name, err)
		}
		pods, err := c.kube.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return replaced, fmt.Errorf("replace orphaned pods of StatefulSet %s: list pods: %w", name, err)
		}
		var deleted []*corev1.Pod
		for i := range pods.Items {
			pod := &pods.Items[i]
			if !ordinalPod(name, pod.Name) || pod.DeletionTimestamp != nil || selector.Matches(labels.Set(pod.Labels)) {
				continue
			}
			if owner := metav1.GetControllerOf(pod); owner != nil && owner.UID != sts.UID {
				continue
			}
			err := c.kube.CoreV1().Pods(c.namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &pod.UID},
			})
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				continue // already gone, or replaced meanwhile
			}
			if err != nil {
				return replaced, fmt.Errorf("delete orphaned pod %s of StatefulSet %s: %w", pod.Name, name, err)
			}
			c.log.Info("deleted orphaned pod", "pod", pod.Name, "statefulset", name, "labels", labels.Set(pod.Labels).String(), "selector", selector.String())
			replaced = append(replaced, pod.Name)
			deleted = append(deleted, pod)
		}
		if err := c.resync(ctx, sts, deleted); err != nil {
			return replaced, err
		}
	}
	return replaced, nil
}

// resyncAnnotation is the annotation resync sets on a StatefulSet whose orphaned pods it
// deleted: when, and which.
const resyncAnnotation = "identity-upgrade/replaced-orphaned-pods"

// resync waits until the deleted pods are gone, then annotates the StatefulSet so that its
// controller creates its own pods now. While an orphan held their names, each of its attempts
// failed and its work queue backed off exponentially (to minutes after a long helm wait); a
// change to the StatefulSet queues it again at once.
func (c *Client) resync(ctx context.Context, sts *appsv1.StatefulSet, deleted []*corev1.Pod) error {
	if len(deleted) == 0 {
		return nil
	}
	names := make([]string, len(deleted))
	for i, pod := range deleted {
		names[i] = pod.Name
		err := pollBackoff().Until(ctx, true, true, func(ctx context.Context) (bool, error) {
			now, err := c.kube.CoreV1().Pods(c.namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return err == nil && now.UID != pod.UID, err
		})
		if err != nil {
			return fmt.Errorf("wait for orphaned pod %s to go: %w", pod.Name, err)
		}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		resyncAnnotation: time.Now().UTC().Format(time.RFC3339) + " " + strings.Join(names, ","),
	}}})
	if err != nil {
		return err
	}
	if _, err := c.kube.AppsV1().StatefulSets(c.namespace).Patch(ctx, sts.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("ask StatefulSet %s to create its pods: %w", sts.Name, err)
	}
	c.log.Info("orphaned pods gone; StatefulSet asked to create its own now", "statefulset", sts.Name, "pods", strings.Join(names, ","))
	return nil
}

// ordinalPod reports whether pod is named <statefulset>-<digits>.
func ordinalPod(statefulset, pod string) bool {
	ordinal, ok := strings.CutPrefix(pod, statefulset+"-")
	if !ok || ordinal == "" {
		return false
	}
	for _, r := range ordinal {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// pollBackoff is the interval of a poll: from 50 ms, growing by half each time, to 1 s, then
// 1 s until the condition is met or ctx ends. (Once Cap is reached, DelayFunc keeps returning
// it; wait.ExponentialBackoff would stop there instead.)
func pollBackoff() wait.DelayFunc {
	return wait.Backoff{Duration: 50 * time.Millisecond, Factor: 1.5, Cap: time.Second, Steps: math.MaxInt}.DelayFunc()
}
