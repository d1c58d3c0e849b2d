package readiness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// DefaultLogLines is how many log lines a failure carries when the request names no number.
const DefaultLogLines = 20

// logTimeout bounds fetching a failing container's log: a slow log must not delay the
// rollback.
const logTimeout = 5 * time.Second

// containerLogs fetches the last lines of a container's log through the apiserver: the
// previous instance's first when the container ran before (that one crashed), then the
// current one. A failure to fetch comes back as a one-line note, never as an error: it must
// not hide why the release is not ready.
func (w *Waiter) containerLogs(ctx context.Context, namespace, pod string, sig podSignal, n int) []string {
	if n <= 0 {
		n = DefaultLogLines
	}
	ctx, cancel := context.WithTimeout(ctx, logTimeout)
	defer cancel()
	var attempts []bool // Previous values to try
	if sig.previous {
		attempts = append(attempts, true)
	}
	if sig.started {
		attempts = append(attempts, false)
	}
	if len(attempts) == 0 {
		return []string{"(logs unavailable: container " + sig.container + " never started)"}
	}
	var errs []error
	for _, previous := range attempts {
		tail := int64(n)
		data, err := w.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{
			Container: sig.container, TailLines: &tail, Previous: previous,
		}).DoRaw(ctx)
		if err != nil {
			which := "current"
			if previous {
				which = "previous"
			}
			errs = append(errs, fmt.Errorf("%s: %w", which, err))
			continue
		}
		if out := lastLines(data, n); len(out) > 0 {
			return out
		}
	}
	if len(errs) == 0 {
		return []string{"(logs unavailable: the log is empty)"}
	}
	msg := strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "; ")
	return []string{"(logs unavailable: " + msg + ")"}
}

// lastLines splits a log into lines and keeps the last n, without a trailing empty one.
func lastLines(data []byte, n int) []string {
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return nil
	}
	out := strings.Split(string(data), "\n")
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
