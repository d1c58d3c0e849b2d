package keycloak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var _ rollout.TxObjectStore = TxStore{}

// TxStore deletes Keycloak's transaction object store (the vendor's second step, "delete
// data/tx-object-store/ in the Keycloak pod") in every running pod of the Keycloak workloads,
// through the pods' exec subresource (`rm -rf -- <Path>`, no shell).
type TxStore struct {
	Client kubernetes.Interface
	// Config is the REST configuration exec connects with (the same cluster as Client).
	Config *rest.Config
	// Workload is the `workload` input, as Workloads.Name: "" detects the Keycloak workloads.
	Workload string
	// Path is the `tx-object-store-path` input: an absolute path inside the container.
	Path string
	Log  *slog.Logger
}

// DefaultTxObjectStorePath is where Keycloak up to 16 (WildFly) keeps the store in the
// Identity Service images.
const DefaultTxObjectStorePath = "/opt/jboss/keycloak/standalone/data/tx-object-store"

// stderrTail is how much of a failed command's stderr an error carries.
const stderrTail = 1024

func (x TxStore) log() *slog.Logger {
	if x.Log != nil {
		return x.Log
	}
	return slog.New(slog.DiscardHandler)
}

// CheckTxObjectStorePath refuses a `tx-object-store-path` that `rm -rf` must never be given:
// empty, relative, the root, or with a ".." element.
func CheckTxObjectStorePath(p string) error {
	switch {
	case p == "":
		return errors.New("tx-object-store-path is empty")
	case !path.IsAbs(p):
		return fmt.Errorf("tx-object-store-path %q is not an absolute path", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("tx-object-store-path %q contains \"..\"", p)
	case path.Clean(p) == "/":
		return fmt.Errorf("tx-object-store-path %q is the root directory", p)
	case strings.ContainsAny(p, "\x00\n"):
		return fmt.Errorf("tx-object-store-path %q contains a NUL or newline", p)
	}
	return nil
}

// Clear deletes Path in every running pod of the Keycloak workloads of the manifest (found as
// Detect finds them, their pods by the live workload's selector) and returns the pods it
// cleared, also together with an error. Every pod is tried; the errors are joined. A workload
// without running pods has nothing to clear.
func (x TxStore) Clear(ctx context.Context, namespace, manifest string) ([]string, error) {
	if err := CheckTxObjectStorePath(x.Path); err != nil {
		return nil, err
	}
	if x.Config == nil {
		return nil, errors.New("clear tx-object-store: no REST configuration for pod exec")
	}
	targets, err := Detect(manifest, x.Workload)
	if err != nil {
		return nil, err
	}
	w := Workloads{Client: x.Client, Log: x.Log}
	var cleared []string
	var errs []error
	for _, t := range targets {
		selector, err := w.specSelector(ctx, namespace, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pods, err := x.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			errs = append(errs, fmt.Errorf("list the pods of %s/%s: %w", t.Kind, t.Name, err))
			continue
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			running++
			container := keycloakContainer(p.Spec.Containers)
			if err := x.remove(ctx, namespace, p.Name, container); err != nil {
				errs = append(errs, err)
				continue
			}
			cleared = append(cleared, p.Name)
			x.log().Info("tx-object-store deleted", "pod", p.Name, "container", container, "path", x.Path, "workload", t.Kind+"/"+t.Name)
		}
		if running == 0 {
			x.log().Warn("no running pod: no tx-object-store to delete", "workload", t.Kind+"/"+t.Name, "namespace", namespace)
		}
	}
	return cleared, errors.Join(errs...)
}

// keycloakContainer picks the container to exec in: the first whose name contains
// "keycloak", otherwise the first.
func keycloakContainer(cs []corev1.Container) string {
	for _, c := range cs {
		if strings.Contains(strings.ToLower(c.Name), "keycloak") {
			return c.Name
		}
	}
	if len(cs) == 0 {
		return ""
	}
	return cs[0].Name
}

// remove runs `rm -rf -- Path` in a container.
func (x TxStore) remove(ctx context.Context, namespace, pod, container string) error {
	cmd := []string{"rm", "-rf", "--", x.Path}
	var stdout, stderr bytes.Buffer
	err := podExec{Client: x.Client, Config: x.Config}.run(ctx, namespace, pod, container, cmd, &stdout, &stderr)
	if err == nil {
		return nil
	}
	return execFailure("delete tx-object-store", fmt.Sprintf("pod %s/%s container %s", namespace, pod, container), cmd, err, stderr.String())
}

// lastBytes returns the trimmed end of s, at most n bytes of it.
func lastBytes(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
