package keycloak

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

// manifestOf renders objects the way helm stores a release manifest.
func manifestOf(t *testing.T, objs ...runtime.Object) string {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n# Source: identity/templates/x.yaml\n")
		b.Write(y)
	}
	return b.String()
}

func statefulSet(name string, replicas int32, podLabels map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: podLabels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: podLabels},
			Template:    podTemplate(podLabels),
		},
	}
}

func deployment(name string, replicas int32, podLabels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: podLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: podTemplate(podLabels),
		},
	}
}

// podTemplate tolerates kwok's fake nodes, which then run the pods (and make them Ready).
func podTemplate(podLabels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "example.invalid/app:1"}},
			Tolerations: []corev1.Toleration{{
				Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpEqual, Value: "fake", Effect: corev1.TaintEffectNoSchedule,
			}},
		},
	}
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "keycloak"}},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
}

func TestDetect(t *testing.T) {
	pg := statefulSet("identity-postgresql-id", 1, map[string]string{"app": "postgresql-id", "release": "identity"})
	kcByName := statefulSet("identity-id-keycloak", 1, map[string]string{"app.kubernetes.io/instance": "identity"})
	kcByLabel := deployment("identity-server", 1, map[string]string{"app.kubernetes.io/name": "KeyCloak"})
	kcByComponent := deployment("iam", 1, map[string]string{"app.kubernetes.io/component": "keycloak-server"})
	svc := service("identity-keycloak-http", map[string]string{"app": "keycloak"}) // a Service: never a workload
	plain := deployment("identity-web", 1, map[string]string{"app": "web"})

	tests := []struct {
		name     string
		manifest string
		workload string
		want     []rollout.Scaled
		wantErr  []string
	}{
		{
			name:     "auto by name, not postgres or a service",
			manifest: manifestOf(t, pg, svc, kcByName),
			want:     []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "auto by app.kubernetes.io/name label, any case",
			manifest: manifestOf(t, pg, kcByLabel, plain),
			want:     []rollout.Scaled{{Kind: Deployment, Name: "identity-server"}},
		},
		{
			name:     "auto by component label, several in manifest order",
			manifest: manifestOf(t, kcByComponent, pg, kcByName),
			want:     []rollout.Scaled{{Kind: Deployment, Name: "iam"}, {Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "auto finds none",
			manifest: manifestOf(t, pg, svc, plain),
			wantErr:  []string{"`workload` input", "StatefulSet/identity-postgresql-id", "Deployment/identity-web"},
		},
		{
			name:     "explicit Kind/name",
			manifest: manifestOf(t, pg, kcByName, plain),
			workload: "Deployment/identity-web",
			want:     []rollout.Scaled{{Kind: Deployment, Name: "identity-web"}},
		},
		{
			name:     "explicit short kind",
			manifest: manifestOf(t, pg, kcByName),
			workload: "sts/identity-postgresql-id",
			want:     []rollout.Scaled{{Kind: StatefulSet, Name: "identity-postgresql-id"}},
		},
		{
			name:     "explicit bare name",
			manifest: manifestOf(t, pg, kcByName),
			workload: "identity-id-keycloak",
			want:     []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "explicit name not in manifest",
			manifest: manifestOf(t, pg, kcByName),
			workload: "StatefulSet/keycloak",
			wantErr:  []string{"`workload` input", `"StatefulSet/keycloak"`, "StatefulSet/identity-id-keycloak"},
		},
		{
			name:     "explicit kind mismatch",
			manifest: manifestOf(t, pg, kcByName),
			workload: "Deployment/identity-id-keycloak",
			wantErr:  []string{"`workload` input", "not in the release manifest"},
		},
		{
			name:     "explicit unknown kind",
			manifest: manifestOf(t, pg, kcByName),
			workload: "DaemonSet/identity-id-keycloak",
			wantErr:  []string{"`workload` input", "neither StatefulSet nor Deployment"},
		},
		{
			name:     "explicit bare name of two kinds",
			manifest: manifestOf(t, statefulSet("kc", 1, map[string]string{"a": "b"}), deployment("kc", 1, map[string]string{"a": "c"})),
			workload: "kc",
			wantErr:  []string{"`workload` input", "StatefulSet/kc or Deployment/kc"},
		},
		{
			name:     "empty manifest",
			manifest: "",
			wantErr:  []string{"`workload` input", "workloads: none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.manifest, tt.workload)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Detect = %v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScaleDownAndUp(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	ns := kube.Namespace
	kcLabels := map[string]string{"app": "keycloak", "release": "identity"}
	pgLabels := map[string]string{"app": "postgresql-id", "release": "identity"}
	kc := statefulSet("identity-id-keycloak", 2, kcLabels)
	pg := statefulSet("identity-postgresql-id", 1, pgLabels)
	svc := service("identity-id-keycloak-http", kcLabels)
	apps := kube.Client.AppsV1().StatefulSets(ns)
	for _, s := range []*appsv1.StatefulSet{kc, pg} {
		if _, err := apps.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kube.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	manifest := manifestOf(t, svc, pg, kc)
	waitReadyPods(t, kube.Client, ns, "app=keycloak", 2)
	waitReadyPods(t, kube.Client, ns, "app=postgresql-id", 1)
	pgPod, err := kube.Client.CoreV1().Pods(ns).Get(ctx, "identity-postgresql-id-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	w := Workloads{Client: kube.Client, Log: testLogger(t)}
	downCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	scaled, err := w.ScaleDown(downCtx, ns, manifest)
	if err != nil {
		t.Fatalf("ScaleDown: %v", err)
	}
	t.Logf("ScaleDown took %s", time.Since(start).Round(time.Millisecond))
	want := []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak", Replicas: 2}}
	if !slices.Equal(scaled, want) {
		t.Errorf("ScaleDown = %v, want %v", scaled, want)
	}
	pods, err := kube.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=keycloak"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d keycloak pods remain after ScaleDown", len(pods.Items))
	}
	if s, _ := apps.Get(ctx, "identity-id-keycloak", metav1.GetOptions{}); *s.Spec.Replicas != 0 {
		t.Errorf("keycloak replicas = %d after ScaleDown, want 0", *s.Spec.Replicas)
	}
	if s, _ := apps.Get(ctx, "identity-postgresql-id", metav1.GetOptions{}); *s.Spec.Replicas != 1 {
		t.Errorf("postgres replicas = %d, want 1 untouched", *s.Spec.Replicas)
	}
	if p, err := kube.Client.CoreV1().Pods(ns).Get(ctx, "identity-postgresql-id-0", metav1.GetOptions{}); err != nil || p.UID != pgPod.UID {
		t.Errorf("postgres pod replaced or gone: err %v", err)
	}

	// Already at 0 (a second run, or a re-run after a failure): recorded as 0.
	again, err := w.ScaleDown(downCtx, ns, manifest)
	if err != nil {
		t.Fatalf("second ScaleDown: %v", err)
	}
	if want := []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak", Replicas: 0}}; !slices.Equal(again, want) {
		t.Errorf("second ScaleDown = %v, want %v", again, want)
	}
	// Scaling that record up changes nothing.
	if err := w.ScaleUp(ctx, ns, again); err != nil {
		t.Fatalf("ScaleUp of a 0 record: %v", err)
	}
	if s, _ := apps.Get(ctx, "identity-id-keycloak", metav1.GetOptions{}); *s.Spec.Replicas != 0 {
		t.Errorf("keycloak replicas = %d after ScaleUp of a 0 record, want 0", *s.Spec.Replicas)
	}

	if err := w.ScaleUp(ctx, ns, scaled); err != nil {
		t.Fatalf("ScaleUp: %v", err)
	}
	if s, _ := apps.Get(ctx, "identity-id-keycloak", metav1.GetOptions{}); *s.Spec.Replicas != 2 {
		t.Errorf("keycloak replicas = %d after ScaleUp, want 2", *s.Spec.Replicas)
	}
	waitReadyPods(t, kube.Client, ns, "app=keycloak", 2)
}

func TestScaleDownDeploymentNamedExplicitly(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	ns := kube.Namespace
	podLabels := map[string]string{"app": "iam"}
	d := deployment("iam", 3, podLabels)
	if _, err := kube.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPods(t, kube.Client, ns, "app=iam", 3)

	w := Workloads{Client: kube.Client, Name: "Deployment/iam", Log: testLogger(t)}
	downCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	scaled, err := w.ScaleDown(downCtx, ns, manifestOf(t, d))
	if err != nil {
		t.Fatalf("ScaleDown: %v", err)
	}
	if want := []rollout.Scaled{{Kind: Deployment, Name: "iam", Replicas: 3}}; !slices.Equal(scaled, want) {
		t.Errorf("ScaleDown = %v, want %v", scaled, want)
	}
	pods, err := kube.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=iam"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d pods remain after ScaleDown", len(pods.Items))
	}
	if err := w.ScaleUp(ctx, ns, scaled); err != nil {
		t.Fatalf("ScaleUp: %v", err)
	}
	waitReadyPods(t, kube.Client, ns, "app=iam", 3)
}

// TestScaleDownGivesUpWithCtx: a pod that never goes (here: one matching the selector that
// no controller owns, as an orphaned pod would) ends the wait with ctx, naming the pod, and
// the workload is still returned so that it is scaled up again.
func TestScaleDownGivesUpWithCtx(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	ns := kube.Namespace
	podLabels := map[string]string{"app": "keycloak"}
	kc := statefulSet("kc", 1, podLabels)
	if _, err := kube.Client.AppsV1().StatefulSets(ns).Create(ctx, kc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray-keycloak", Labels: podLabels}, Spec: podTemplate(podLabels).Spec}
	if _, err := kube.Client.CoreV1().Pods(ns).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPods(t, kube.Client, ns, "app=keycloak", 2)

	w := Workloads{Client: kube.Client, Log: testLogger(t)}
	downCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	scaled, err := w.ScaleDown(downCtx, ns, manifestOf(t, kc))
	t.Logf("ScaleDown error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "stray-keycloak") {
		t.Errorf("ScaleDown: err = %v, want one naming the remaining pod", err)
	}
	if want := []rollout.Scaled{{Kind: StatefulSet, Name: "kc", Replicas: 1}}; !slices.Equal(scaled, want) {
		t.Errorf("ScaleDown = %v, want %v with the error", scaled, want)
	}
}

func waitReadyPods(t *testing.T, client kubernetes.Interface, ns, selector string, n int) {
	t.Helper()
	var last []string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		last = last[:0]
		ready := 0
		for _, p := range pods.Items {
			last = append(last, p.Name+":"+string(p.Status.Phase))
			if p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == n && len(pods.Items) == n, nil
	})
	if err != nil {
		t.Fatalf("wait for %d ready pods of %s: %v (pods: %v)", n, selector, err, last)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
