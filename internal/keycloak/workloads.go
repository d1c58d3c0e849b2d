package keycloak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Workload kinds that Workloads scales.
const (
	StatefulSet = "StatefulSet"
	Deployment  = "Deployment"
)

var _ rollout.Workloads = Workloads{}

// Workloads stops and starts the Keycloak workloads of a release through their scale
// subresource (the vendor's downtime).
type Workloads struct {
	Client kubernetes.Interface
	// Name is the `workload` input: "" detects the Keycloak workloads in the manifest (see
	// Detect); otherwise "StatefulSet/name", "Deployment/name" or a bare name, which must be in
	// the manifest and must not run PostgreSQL.
	Name string
	Log  *slog.Logger
}

func (w Workloads) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.New(slog.DiscardHandler)
}

// ScaleDown scales the Keycloak workloads of the manifest (as Detect finds them: a PostgreSQL
// workload never) to zero and waits until none of their pods remain (including terminating ones), for as long as ctx allows. It returns what
// it scaled with the replicas each had, also together with an error: those must be scaled up
// again.
func (w Workloads) ScaleDown(ctx context.Context, namespace, manifest string) ([]rollout.Scaled, error) {
	found, err := detect(manifest, w.Name)
	if err != nil {
		return nil, err
	}
	for _, d := range found.Postgres {
		w.log().Info("PostgreSQL, left running", "workload", d.String(), "namespace", namespace, "by", d.Why)
	}
	for _, d := range found.Keycloak {
		w.log().Info("Keycloak workload", "workload", d.String(), "namespace", namespace, "by", d.Why)
	}
	targets := found.scaled()
	var scaled []rollout.Scaled
	selectors := make([]labels.Selector, 0, len(targets))
	for _, t := range targets {
		var replicas int32
		var selector string
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := w.getScale(ctx, namespace, t)
			if err != nil {
				return err
			}
			replicas, selector = s.Spec.Replicas, s.Status.Selector
			if replicas == 0 {
				return nil
			}
			s.Spec.Replicas = 0
			_, err = w.updateScale(ctx, namespace, t, s)
			return err
		})
		if err != nil {
			return scaled, fmt.Errorf("scale %s/%s to 0: %w", t.Kind, t.Name, err)
		}
		t.Replicas = replicas
		scaled = append(scaled, t)
		if selector == "" {
			selector, err = w.specSelector(ctx, namespace, t)
			if err != nil {
				return scaled, err
			}
		}
		sel, err := labels.Parse(selector)
		if err != nil {
			return scaled, fmt.Errorf("selector %q of %s/%s: %w", selector, t.Kind, t.Name, err)
		}
		selectors = append(selectors, sel)
		w.log().Info("scaled down", "workload", t.Kind+"/"+t.Name, "namespace", namespace, "replicas", replicas)
	}
	for i, t := range scaled {
		if err := w.waitNoPods(ctx, namespace, t, selectors[i]); err != nil {
			return scaled, err
		}
	}
	return scaled, nil
}

// ScaleUp gives each workload its recorded replicas back, without waiting for readiness.
// Workloads recorded at 0 are left alone. Every workload is tried; the errors are joined.
func (w Workloads) ScaleUp(ctx context.Context, namespace string, scaled []rollout.Scaled) error {
	var errs []error
	for _, t := range scaled {
		if t.Replicas == 0 {
			w.log().Info("left at 0 replicas, as it was", "workload", t.Kind+"/"+t.Name, "namespace", namespace)
			continue
		}
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := w.getScale(ctx, namespace, t)
			if err != nil {
				return err
			}
			if s.Spec.Replicas == t.Replicas {
				return nil
			}
			s.Spec.Replicas = t.Replicas
			_, err = w.updateScale(ctx, namespace, t, s)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("scale %s/%s back to %d: %w", t.Kind, t.Name, t.Replicas, err))
			continue
		}
		w.log().Info("scaled up", "workload", t.Kind+"/"+t.Name, "namespace", namespace, "replicas", t.Replicas)
	}
	return errors.Join(errs...)
}

func (w Workloads) getScale(ctx context.Context, namespace string, t rollout.Scaled) (*autoscalingv1.Scale, error) {
	switch t.Kind {
	case StatefulSet:
		return w.Client.AppsV1().StatefulSets(namespace).GetScale(ctx, t.Name, metav1.GetOptions{})
	case Deployment:
		return w.Client.AppsV1().Deployments(namespace).GetScale(ctx, t.Name, metav1.GetOptions{})
	}
	return nil, fmt.Errorf("kind %q is neither StatefulSet nor Deployment", t.Kind)
}

func (w Workloads) updateScale(ctx context.Context, namespace string, t rollout.Scaled, s *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
	switch t.Kind {
	case StatefulSet:
		return w.Client.AppsV1().StatefulSets(namespace).UpdateScale(ctx, t.Name, s, metav1.UpdateOptions{})
	case Deployment:
		return w.Client.AppsV1().Deployments(namespace).UpdateScale(ctx, t.Name, s, metav1.UpdateOptions{})
	}
	return nil, fmt.Errorf("kind %q is neither StatefulSet nor Deployment", t.Kind)
}

// specSelector reads a workload's pod selector when its scale subresource does not report it.
func (w Workloads) specSelector(ctx context.Context, namespace string, t rollout.Scaled) (string, error) {
	var sel *metav1.LabelSelector
	switch t.Kind {
	case StatefulSet:
		o, err := w.Client.AppsV1().StatefulSets(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("read %s/%s: %w", t.Kind, t.Name, err)
		}
		sel = o.Spec.Selector
	case Deployment:
		o, err := w.Client.AppsV1().Deployments(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("read %s/%s: %w", t.Kind, t.Name, err)
		}
		sel = o.Spec.Selector
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "", fmt.Errorf("selector of %s/%s: %w", t.Kind, t.Name, err)
	}
	if s.Empty() {
		return "", fmt.Errorf("%s/%s has an empty selector: refusing to wait on every pod of the namespace", t.Kind, t.Name)
	}
	return s.String(), nil
}

// waitNoPods polls, with a growing interval, until no pod of the selector remains.
func (w Workloads) waitNoPods(ctx context.Context, namespace string, t rollout.Scaled, sel labels.Selector) error {
	start := time.Now()
	var remaining []string
	var lastErr error
	// 100 ms, doubling up to 2 s; past the cap every interval is 2 s, until ctx ends.
	interval := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: 2 * time.Second, Steps: math.MaxInt}
	err := interval.DelayFunc().Until(ctx, true, true, func(ctx context.Context) (bool, error) {
		pods, err := w.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			lastErr = err
			return false, nil
		}
		remaining = remaining[:0]
		for _, p := range pods.Items {
			remaining = append(remaining, p.Name)
		}
		lastErr = nil
		return len(remaining) == 0, nil
	})
	if err == nil {
		w.log().Info("pods gone", "workload", t.Kind+"/"+t.Name, "namespace", namespace, "after", time.Since(start).Round(time.Millisecond))
		return nil
	}
	cause := context.Cause(ctx)
	if lastErr != nil {
		cause = errors.Join(cause, lastErr)
	}
	slices.Sort(remaining)
	return fmt.Errorf("wait for the pods of %s/%s to go (%d remain: %s) after %s: %w",
		t.Kind, t.Name, len(remaining), strings.Join(remaining, ", "), time.Since(start).Round(time.Second), cause)
}

// Replicas returns the Keycloak workloads of the manifest with the replicas they have now,
// changing nothing: what a scale-down would record, for a journal written before it.
func (w Workloads) Replicas(ctx context.Context, namespace, manifest string) ([]rollout.Scaled, error) {
	found, err := detect(manifest, w.Name)
	if err != nil {
		return nil, err
	}
	var out []rollout.Scaled
	for _, t := range found.scaled() {
		s, err := w.getScale(ctx, namespace, t)
		if err != nil {
			return out, fmt.Errorf("read the scale of %s/%s: %w", t.Kind, t.Name, err)
		}
		t.Replicas = s.Spec.Replicas
		out = append(out, t)
	}
	return out, nil
}
