package keycloak

import (
	"context"
	"fmt"
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

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
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

// TestScaleDownReleaseNamedKeycloak: the 1.3-like chart installed as release "keycloak", its
// database values on the test world's PostgreSQL, renders keycloak-id-keycloak and the bundled
// keycloak-postgresql-id, whose name contains "keycloak" too. ScaleDown on the release's
// manifest stops Keycloak only: the database keeps its replicas and its pod.
func TestScaleDownReleaseNamedKeycloak(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	ctx := t.Context()
	ns := kube.Namespace
	helm, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := helm.Install(ctx, "keycloak", chartDir("2.1.0"), map[string]any{"postgresql": db.ChartValues()}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const kcSelector = "app.kubernetes.io/name=keycloak,app.kubernetes.io/instance=keycloak"
	waitReadyPods(t, kube.Client, ns, kcSelector, 1)
	apps := kube.Client.AppsV1().StatefulSets(ns)
	pgPod, err := kube.Client.CoreV1().Pods(ns).Get(ctx, "keycloak-postgresql-id-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	w := Workloads{Client: kube.Client, Log: testLogger(t)}
	downCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	scaled, err := w.ScaleDown(downCtx, ns, rel.Manifest)
	t.Logf("ScaleDown took %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("ScaleDown: %v", err)
	}
	if want := []rollout.Scaled{{Kind: StatefulSet, Name: "keycloak-id-keycloak", Replicas: 1}}; !slices.Equal(scaled, want) {
		t.Errorf("ScaleDown = %v, want %v", scaled, want)
	}
	if s, err := apps.Get(ctx, "keycloak-id-keycloak", metav1.GetOptions{}); err != nil || *s.Spec.Replicas != 0 {
		t.Errorf("keycloak-id-keycloak after ScaleDown: %v, want 0 replicas", replicasOf(s, err))
	}
	if s, err := apps.Get(ctx, "keycloak-postgresql-id", metav1.GetOptions{}); err != nil || *s.Spec.Replicas != 1 {
		t.Errorf("keycloak-postgresql-id after ScaleDown: %v, want 1 replica untouched", replicasOf(s, err))
	}
	p, err := kube.Client.CoreV1().Pods(ns).Get(ctx, "keycloak-postgresql-id-0", metav1.GetOptions{})
	if err != nil || p.UID != pgPod.UID || p.DeletionTimestamp != nil {
		t.Errorf("the database pod was stopped or replaced (err %v)", err)
	}

	if err := w.ScaleUp(ctx, ns, scaled); err != nil {
		t.Fatalf("ScaleUp: %v", err)
	}
	waitReadyPods(t, kube.Client, ns, kcSelector, 1)
}

func replicasOf(s *appsv1.StatefulSet, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case s.Spec.Replicas == nil:
		return "replicas unset"
	}
	return fmt.Sprintf("%d replicas", *s.Spec.Replicas)
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
