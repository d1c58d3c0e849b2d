package readiness_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/readiness"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

// faultLabel drives the kwok fault stages of testdata/kwok (see its README). A value no stage
// knows ("hang") leaves a scheduled pod Pending with no container status at all: no stage
// makes it ready, and nothing about it is decisive.
const faultLabel = "identity-upgrade.test/fault"

// podTemplate is a Keycloak-like pod that schedules on the kwok nodes.
func podTemplate(app, fault string, annotations map[string]string) corev1.PodTemplateSpec {
	labels := map[string]string{"app": app}
	if fault != "" {
		labels[faultLabel] = fault
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "keycloak", Image: "quay.io/keycloak/keycloak:12.0.4"}},
			Tolerations: []corev1.Toleration{{
				Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpEqual, Value: "fake", Effect: corev1.TaintEffectNoSchedule,
			}},
		},
	}
}

func statefulSet(name string, replicas int32, tmpl corev1.PodTemplateSpec) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": tmpl.Labels["app"]}},
			Template:            tmpl,
		},
	}
}

func deployment(name string, replicas int32, tmpl corev1.PodTemplateSpec) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": tmpl.Labels["app"]}},
			Template: tmpl,
		},
	}
}

func service(name, app string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}
}

func configMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       map[string]string{"KEYCLOAK_LOGLEVEL": "INFO"},
	}
}

// install creates the objects in the test's namespace and returns them as a manifest the way
// helm stores one: "# Source:" comments, no namespace in the objects, an empty document.
func install(t *testing.T, kube testworld.Kube, objs ...runtime.Object) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("---\n# Source: identity/templates/empty.yaml\n")
	for _, obj := range objs {
		data, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "---\n# Source: identity/templates/%T.yaml\n%s", obj, data)
		ctx, ns := t.Context(), kube.Namespace
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			_, err = kube.Client.AppsV1().StatefulSets(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = kube.Client.AppsV1().Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = kube.Client.CoreV1().Services(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, err = kube.Client.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Pod:
			_, err = kube.Client.CoreV1().Pods(ns).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("install: unsupported %T", obj)
		}
		if err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
	return b.String()
}

func newWaiter(t *testing.T, kube testworld.Kube) *readiness.Waiter {
	t.Helper()
	w, err := readiness.New(kube.Config, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// testWriter sends the waiter's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestWaitHealthy(t *testing.T) {
	t.Parallel()
	kube := testworld.Cluster(t)
	// A crashing pod the release's selectors do not match must not count.
	stray := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "stray"},
		Spec:       podTemplate("other", "crashloop", nil).Spec,
	}
	stray.Labels = map[string]string{"app": "other", faultLabel: "crashloop"}
	if _, err := kube.Client.CoreV1().Pods(kube.Namespace).Create(t.Context(), stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	manifest := install(t, kube,
		configMap("identity-config"),
		service("identity", "identity"),
		statefulSet("identity", 2, podTemplate("identity", "", nil)),
		deployment("identity-proxy", 1, podTemplate("identity-proxy", "", nil)),
	)
	const window = 2 * time.Second
	start := time.Now()
	err := newWaiter(t, kube).Wait(t.Context(), rollout.WaitRequest{
		Namespace: kube.Namespace, Manifest: manifest, Timeout: time.Minute, StabilityWindow: window,
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if took < window {
		t.Errorf("Wait returned after %s, before the stability window of %s", took, window)
	}
	t.Logf("healthy release ready after %s", took.Round(10*time.Millisecond))
}

func TestWaitFailsFast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		obj      func() runtime.Object
		resource string
		window   time.Duration
		reasons  []string
		// container is the failing container, "" for a pod-level signal.
		container string
		message   string
		inWindow  bool
		logLine   string
	}{{
		name:      "crashloop",
		obj:       func() runtime.Object { return statefulSet("identity", 2, podTemplate("identity", "crashloop", nil)) },
		resource:  "StatefulSet/identity",
		reasons:   []string{"CrashLoopBackOff", "Terminated"},
		container: "keycloak",
		// The previous instance's log (testdata/kwok/logs/keycloak-previous.log) says why it died.
		logLine: "java.lang.RuntimeException: Failed to update database",
	}, {
		name:      "image pull",
		obj:       func() runtime.Object { return deployment("identity", 1, podTemplate("identity", "image-pull", nil)) },
		resource:  "Deployment/identity",
		reasons:   []string{"ErrImagePull", "ImagePullBackOff"},
		container: "keycloak",
	}, {
		name: "create container config error",
		obj: func() runtime.Object {
			return statefulSet("identity", 1, podTemplate("identity", "create-container-config-error", nil))
		},
		resource:  "StatefulSet/identity",
		reasons:   []string{"CreateContainerConfigError"},
		container: "keycloak",
	}, {
		name: "unschedulable",
		obj: func() runtime.Object {
			tmpl := podTemplate("identity", "", nil)
			tmpl.Spec.NodeSelector = map[string]string{"identity-upgrade.test/no-such-node": "true"}
			return statefulSet("identity", 1, tmpl)
		},
		resource: "StatefulSet/identity",
		reasons:  []string{"Unschedulable"},
		message:  "node",
	}, {
		// What helm --atomic reports as a success: ready first, crashing a second later.
		name: "crash after ready",
		obj: func() runtime.Object {
			return statefulSet("identity", 1, podTemplate("identity", "crash-after-ready",
				map[string]string{"identity-upgrade.test/fault-delay": "1s"}))
		},
		resource:  "StatefulSet/identity",
		window:    5 * time.Second,
		reasons:   []string{"Terminated", "RestartCountRising"},
		container: "keycloak",
		inWindow:  true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := testworld.Cluster(t)
			manifest := install(t, kube, service("identity", "identity"), tt.obj())
			err := newWaiter(t, kube).Wait(t.Context(), rollout.WaitRequest{
				Namespace: kube.Namespace, Manifest: manifest, Timeout: time.Minute, StabilityWindow: tt.window,
			})
			var nr *rollout.NotReady
			if !errors.As(err, &nr) || !errors.Is(err, rollout.ErrNotReady) {
				t.Fatalf("Wait = %v, want a *NotReady", err)
			}
			t.Logf("decided after %s: %v", nr.After.Round(10*time.Millisecond), nr)
			if !slices.Contains(tt.reasons, nr.Reason) {
				t.Errorf("Reason %q, want one of %q", nr.Reason, tt.reasons)
			}
			if nr.Resource != tt.resource {
				t.Errorf("Resource %q, want %q", nr.Resource, tt.resource)
			}
			if !strings.HasPrefix(nr.Pod, "identity-") {
				t.Errorf("Pod %q, want a pod of the workload", nr.Pod)
			}
			if nr.Container != tt.container {
				t.Errorf("Container %q, want %q", nr.Container, tt.container)
			}
			if !strings.Contains(nr.Message, tt.message) {
				t.Errorf("Message %q does not mention %q", nr.Message, tt.message)
			}
			if nr.InWindow != tt.inWindow {
				t.Errorf("InWindow %v, want %v", nr.InWindow, tt.inWindow)
			}
			if limit := 10 * time.Second; nr.After >= limit {
				t.Errorf("decided after %s, want < %s (the timeout was a minute)", nr.After, limit)
			}
			if tt.container != "" && len(nr.Logs) == 0 {
				t.Errorf("no logs, not even a note why")
			}
			if tt.logLine != "" && !slices.ContainsFunc(nr.Logs, func(l string) bool { return strings.Contains(l, tt.logLine) }) {
				t.Errorf("Logs do not contain %q:\n%s", tt.logLine, strings.Join(nr.Logs, "\n"))
			}
		})
	}
}

func TestWaitTimeout(t *testing.T) {
	t.Parallel()
	kube := testworld.Cluster(t)
	manifest := install(t, kube, configMap("identity-config"), statefulSet("identity", 1, podTemplate("identity", "hang", nil)))
	const timeout = 4 * time.Second
	err := newWaiter(t, kube).Wait(t.Context(), rollout.WaitRequest{
		Namespace: kube.Namespace, Manifest: manifest, Timeout: timeout, StabilityWindow: time.Second,
	})
	var nr *rollout.NotReady
	if !errors.As(err, &nr) {
		t.Fatalf("Wait = %v, want a *NotReady", err)
	}
	t.Logf("after %s: %v", nr.After.Round(10*time.Millisecond), nr)
	if nr.Reason != "Timeout" || nr.Resource != "StatefulSet/identity" || nr.InWindow {
		t.Errorf("got %s %s (in window %v), want Timeout StatefulSet/identity", nr.Reason, nr.Resource, nr.InWindow)
	}
	if nr.Pod != "identity-0" || !strings.Contains(nr.Message, "identity-0") {
		t.Errorf("pending pod not named: Pod %q, Message %q", nr.Pod, nr.Message)
	}
	if nr.After < timeout || nr.After > timeout+2*time.Second {
		t.Errorf("timed out after %s, want about %s", nr.After, timeout)
	}
}

func TestWaitProbe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// answer gives the status of the n-th probe (from 1) at time since the server started.
		answer  func(n int64, since time.Duration) int
		window  time.Duration
		wantErr bool
	}{{
		name: "fails in the window",
		answer: func(n int64, _ time.Duration) int {
			if n <= 2 {
				return http.StatusOK
			}
			return http.StatusServiceUnavailable
		},
		window:  5 * time.Second,
		wantErr: true,
	}, {
		name: "fails before the first success",
		answer: func(_ int64, since time.Duration) int {
			if since < 3*time.Second {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		},
		window: 2 * time.Second,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := testworld.Cluster(t)
			var calls atomic.Int64
			started := time.Now()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.answer(calls.Add(1), time.Since(started)))
			}))
			t.Cleanup(srv.Close)
			if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
				t.Fatalf("probe server %s is not on loopback", srv.URL)
			}
			manifest := install(t, kube, statefulSet("identity", 1, podTemplate("identity", "", nil)))
			err := newWaiter(t, kube).Wait(t.Context(), rollout.WaitRequest{
				Namespace: kube.Namespace, Manifest: manifest, Timeout: time.Minute, StabilityWindow: tt.window,
				ProbeURL: srv.URL + "/auth/realms/master/.well-known/openid-configuration",
			})
			t.Logf("%d probes, Wait = %v", calls.Load(), err)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Wait: %v", err)
				}
				if calls.Load() < 3 {
					t.Errorf("%d probes: want the failures, a success and the final one", calls.Load())
				}
				return
			}
			var nr *rollout.NotReady
			if !errors.As(err, &nr) {
				t.Fatalf("Wait = %v, want a *NotReady", err)
			}
			if nr.Reason != "ProbeFailed" || !nr.InWindow || !strings.Contains(nr.Message, "503") {
				t.Errorf("got %s (in window %v): %s; want ProbeFailed in the window, with the status", nr.Reason, nr.InWindow, nr.Message)
			}
		})
	}
}

func TestWaitCancel(t *testing.T) {
	t.Parallel()
	kube := testworld.Cluster(t)
	manifest := install(t, kube, statefulSet("identity", 1, podTemplate("identity", "hang", nil)))
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	err := newWaiter(t, kube).Wait(ctx, rollout.WaitRequest{
		Namespace: kube.Namespace, Manifest: manifest, Timeout: time.Minute, StabilityWindow: time.Second,
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, rollout.ErrNotReady) {
		t.Fatalf("Wait = %v, want the context's error and no NotReady", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("returned %s after the start, long after the cancel", took)
	}
}

// TestWaitInTheWindow changes a ready StatefulSet during the stability window. A status that
// goes back while its pods stay as they were (a controller's status written from a stale
// cache: here written by the test, as the failed CI run once saw it, `updated 0/1` with the
// pod ready) is waited out; a pod deleted, which its controller then replaces, fails the wait.
func TestWaitInTheWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(ctx context.Context, kube testworld.Kube) error
		ready  bool
	}{{
		name: "status behind its pods",
		change: func(ctx context.Context, kube testworld.Kube) error {
			sts, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(ctx, "identity", metav1.GetOptions{})
			if err != nil {
				return err
			}
			sts.Status.UpdatedReplicas, sts.Status.CurrentReplicas = 0, 0
			_, err = kube.Client.AppsV1().StatefulSets(kube.Namespace).UpdateStatus(ctx, sts, metav1.UpdateOptions{})
			return err
		},
		ready: true,
	}, {
		name: "pod deleted",
		change: func(ctx context.Context, kube testworld.Kube) error {
			return kube.Client.CoreV1().Pods(kube.Namespace).Delete(ctx, "identity-0", metav1.DeleteOptions{})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := testworld.Cluster(t)
			manifest := install(t, kube, statefulSet("identity", 1, podTemplate("identity", "", nil)))
			var log testworld.LogBuffer
			w, err := readiness.New(kube.Config, slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &log), nil)))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- w.Wait(t.Context(), rollout.WaitRequest{
					Namespace: kube.Namespace, Manifest: manifest, Timeout: time.Minute, StabilityWindow: 5 * time.Second,
				})
			}()
			err = wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
				return strings.Contains(log.String(), "stability window"), nil
			})
			if err != nil {
				t.Fatal("the window did not start")
			}
			if err := tt.change(t.Context(), kube); err != nil {
				t.Fatal(err)
			}
			err = <-done
			var nr *rollout.NotReady
			switch {
			case tt.ready && err != nil:
				t.Fatalf("Wait = %v, want ready", err)
			case tt.ready && !strings.Contains(log.String(), "status behind its pods"):
				t.Error("the status that went back was not seen")
			case !tt.ready && (!errors.As(err, &nr) || !nr.InWindow || nr.Resource != "StatefulSet/identity"):
				t.Fatalf("Wait = %v, want a NotReady of StatefulSet/identity in the window", err)
			}
		})
	}
}
