package kubeforward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

// dbPod creates a pod like the chart's PostgreSQL (port 5432 named postgresql) with labels.
func dbPod(t *testing.T, kube testworld.Kube, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "postgresql", Image: "postgres:11.7",
				Ports: []corev1.ContainerPort{{Name: "postgresql", ContainerPort: testworld.PodPostgresPort}}}},
			Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	pod, err := kube.Client.CoreV1().Pods(kube.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func waitReady(t *testing.T, kube testworld.Kube, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = kube.Client.CoreV1().Pods(kube.Namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil && notReady(pod) == "", nil
	})
	if err != nil {
		t.Fatalf("pod %s not ready: %v", name, err)
	}
	return pod
}

// deletePod deletes a pod and waits until it is gone.
func deletePod(t *testing.T, kube testworld.Kube, name string) {
	t.Helper()
	pods := kube.Client.CoreV1().Pods(kube.Namespace)
	if err := pods.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("pod %s not gone: %v", name, err)
	}
}

func start(t *testing.T, kube testworld.Kube, spec forwardspec.Spec) *Forward {
	t.Helper()
	f, err := Start(t.Context(), Options{Config: kube.Config, Client: kube.Client, Namespace: kube.Namespace, Spec: spec, PodWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// query connects to db through the forward as its owner and returns current_database().
func query(ctx context.Context, f *Forward, db testworld.Database) (string, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(db.Owner, db.OwnerPassword), Host: f.Addr(), Path: "/" + db.Database, RawQuery: "sslmode=disable"}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var name string
	err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&name)
	return name, err
}

func mustQuery(t *testing.T, f *Forward, db testworld.Database) {
	t.Helper()
	name, err := query(t.Context(), f, db)
	if err != nil {
		t.Fatalf("query through the forward: %v", err)
	}
	if name != db.Database {
		t.Fatalf("reached database %q, want %q", name, db.Database)
	}
}

func TestForwardToPodReachesPostgres(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	dbPod(t, kube, "db-0", nil)
	waitReady(t, kube, "db-0")

	before := kube.PostgresForwards()
	f := start(t, kube, forwardspec.Spec{Kind: forwardspec.KindPod, Name: "db-0"})
	mustQuery(t, f, db)
	if kube.PostgresForwards() <= before {
		t.Error("the query did not go through the cluster's port-forward")
	}

	// The listener is on 127.0.0.1 only.
	host, _, err := net.SplitHostPort(f.Addr())
	if err != nil || host != "127.0.0.1" || f.Host() != "127.0.0.1" {
		t.Errorf("forward listens on %s, want 127.0.0.1", f.Addr())
	}
	addrs, err := testworld.ListenAddresses([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range addrs {
		if int(a.Port()) == f.Port() {
			found = true
			if !a.Addr().IsLoopback() || a.Addr().String() != "127.0.0.1" {
				t.Errorf("the forward's socket is bound to %s", a)
			}
		}
	}
	if !found {
		t.Errorf("no listening socket on port %d among %v", f.Port(), addrs)
	}
	if via := f.Transport(); via != "websocket" {
		t.Errorf("the forward went via %q; the API server of Kubernetes %s takes websockets", via, testworld.KubeVersion)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", f.Addr(), time.Second); err == nil {
		t.Error("the forward still accepts connections after Close")
	}
}

// TestForwardFollowsReplacedPod: the pod behind the target is deleted and re-created (as a
// rollback's orphan re-create does); the next connection reaches the new pod, waiting for it.
func TestForwardFollowsReplacedPod(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	labels := map[string]string{"app": "db"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
			{Name: "postgresql", Port: 5432, TargetPort: intstr.FromString("postgresql")},
		}},
	}
	if _, err := kube.Client.CoreV1().Services(kube.Namespace).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := dbPod(t, kube, "db-0", labels)
	waitReady(t, kube, "db-0")

	for _, spec := range []forwardspec.Spec{{Kind: forwardspec.KindService, Name: "db"}, {Kind: forwardspec.KindPod, Name: "db-0", Port: "postgresql"}} {
		t.Run(spec.Kind, func(t *testing.T) {
			f := start(t, kube, spec)
			mustQuery(t, f, db)
			deletePod(t, kube, "db-0")

			// Connect while there is no pod: the connection waits for the new one.
			done := make(chan error, 1)
			go func() {
				_, err := query(t.Context(), f, db)
				done <- err
			}()
			time.Sleep(time.Second)
			second := dbPod(t, kube, "db-0", labels)
			if err := <-done; err != nil {
				t.Fatalf("query while the pod was replaced: %v", err)
			}
			pods := f.Pods()
			if len(pods) != 2 || pods[0].UID != first.UID || pods[1].UID != second.UID {
				t.Errorf("the forward reached %v; want the first pod (uid %s), then its successor (uid %s)", pods, first.UID, second.UID)
			}
			first = second
		})
	}
}

// statefulSet creates a StatefulSet of one pod like the chart's PostgreSQL, whose selector
// and pod labels are labels.
func statefulSet(t *testing.T, kube testworld.Kube, name string, labels map[string]string) {
	t.Helper()
	replicas := int32(1)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "postgresql", Image: "postgres:11.7",
						Ports: []corev1.ContainerPort{{Name: "postgresql", ContainerPort: testworld.PodPostgresPort}}}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}
	if _, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestForwardToStatefulSetPods: auto's target, a StatefulSet, through an orphan re-create of
// it with a new selector (what an upgrade 2.1.0 → 3.0.0 does, and a failed one leaves): its
// own pod, then the orphaned pod that keeps its name and the old labels, then the pod the new
// StatefulSet makes. A Service whose selector matches none of them is never asked.
func TestForwardToStatefulSetPods(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "pg"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "other"},
			Ports: []corev1.ServicePort{{Name: "postgresql", Port: 5432, TargetPort: intstr.FromString("postgresql")}}},
	}
	if _, err := kube.Client.CoreV1().Services(kube.Namespace).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	statefulSet(t, kube, "pg", map[string]string{"app": "pg", "version": "1"})
	first := waitReady(t, kube, "pg-0")

	var log testworld.LogBuffer
	f, err := Start(t.Context(), Options{Config: kube.Config, Client: kube.Client, Namespace: kube.Namespace,
		Spec: forwardspec.Spec{Kind: forwardspec.KindStatefulSet, Name: "pg"}, PodWait: 30 * time.Second,
		Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	mustQuery(t, f, db)

	// Orphan-deleted and re-created with another selector: the old pod stays, not selected.
	orphan := metav1.DeletePropagationOrphan
	sets := kube.Client.AppsV1().StatefulSets(kube.Namespace)
	if err := sets.Delete(t.Context(), "pg", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := sets.Get(ctx, "pg", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Fatalf("the orphan delete did not finish: %v", err)
	}
	mustQuery(t, f, db) // no StatefulSet at all: the pod by its name
	statefulSet(t, kube, "pg", map[string]string{"app": "pg", "version": "2"})
	mustQuery(t, f, db)
	// The orphan goes; the new StatefulSet may make its pg-0 at once.
	pods := kube.Client.CoreV1().Pods(kube.Namespace)
	if err := pods.Delete(t.Context(), "pg-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := pods.Get(ctx, "pg-0", metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && pod.UID != first.UID), nil
	}); err != nil {
		t.Fatalf("the orphaned pod is not gone: %v", err)
	}
	// The controller is not told of an orphan's deletion and retries its failed create with
	// a growing backoff: an update of the StatefulSet makes it look again now.
	if _, err := sets.Patch(t.Context(), "pg", types.MergePatchType, []byte(`{"metadata":{"annotations":{"test/nudge":"1"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	second := waitReady(t, kube, "pg-0")
	mustQuery(t, f, db)

	reached := f.Pods()
	if len(reached) != 2 || reached[0].UID != first.UID || reached[1].UID != second.UID {
		t.Errorf("the forward reached %v; want the first pod (uid %s), then the new StatefulSet's (uid %s)", reached, first.UID, second.UID)
	}
	for _, want := range []string{
		`chosen="selected by statefulset/pg"`,
		`chosen="named like the pods of statefulset/pg, which does not exist now"`,
		`chosen="named like the pods of statefulset/pg, whose selector does not select it (orphaned)"`,
		`port-forward reaches pod" pod=pg-0 uid=` + string(second.UID),
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
}

// TestForwardToARunningPodThatIsNotReady: a PostgreSQL pod that runs but fails its readiness
// probe may well serve the database: when no pod is ready, the forward takes it, and the log
// says so (at Warn).
func TestForwardToARunningPodThatIsNotReady(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	statefulSet(t, kube, "pg", map[string]string{"app": "pg"})
	pod := waitReady(t, kube, "pg-0")
	// The readiness probe fails from now on: the pod's Ready condition is false, its phase
	// still Running.
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].Ready = false
	}
	if _, err := kube.Client.CoreV1().Pods(kube.Namespace).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if why := notReady(pod); why != runningNotReady {
		t.Fatalf("the pod is %q", why)
	}
	for _, spec := range []forwardspec.Spec{{Kind: forwardspec.KindStatefulSet, Name: "pg"}, {Kind: forwardspec.KindPod, Name: "pg-0"}} {
		t.Run(spec.Kind, func(t *testing.T) {
			var log testworld.LogBuffer
			f, err := Start(t.Context(), Options{Config: kube.Config, Client: kube.Client, Namespace: kube.Namespace,
				Spec: spec, PodWait: 10 * time.Second, Log: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer f.Close()
			mustQuery(t, f, db)
			if !strings.Contains(log.String(), `level=WARN msg="port-forward reaches pod" pod=pg-0`) || !strings.Contains(log.String(), "running but not ready") {
				t.Errorf("the log does not say the pod is not ready:\n%s", log.String())
			}
		})
	}
}

func TestForwardRefusesWhatItCannotReach(t *testing.T) {
	kube := testworld.Cluster(t)
	opts := Options{Config: kube.Config, Client: kube.Client, Namespace: kube.Namespace, PodWait: 3 * time.Second}

	opts.Spec = forwardspec.Spec{Kind: forwardspec.KindService, Name: "missing"}
	begin := time.Now()
	_, err := Start(t.Context(), opts)
	var nf *NotFoundError
	if !errors.As(err, &nf) || time.Since(begin) > 2*time.Second {
		t.Errorf("a missing Service: %v after %s; want a NotFoundError at once", err, time.Since(begin))
	}

	// A pod that never runs: the wait is bounded and says why.
	pod := dbPod(t, kube, "hung", map[string]string{"identity-upgrade.test/fault": "hang"})
	opts.Spec = forwardspec.Spec{Kind: forwardspec.KindPod, Name: pod.Name}
	_, err = Start(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "no pod ready to forward to within 3s") || !strings.Contains(err.Error(), "Pending") {
		t.Errorf("a pod that never runs: %v", err)
	}
}

// serviceAccountConfig returns a REST config that authenticates as a new ServiceAccount
// bound to a Role with rules, through a token from the TokenRequest API.
func serviceAccountConfig(t *testing.T, kube testworld.Kube, name string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	cfg := rest.AnonymousClientConfig(kube.Config)
	cfg.BearerToken = kube.ServiceAccountToken(t, name, rules)
	return cfg
}

// TestAccessIsCheckedAtTheStart: the test world's API server authorizes with RBAC; a
// ServiceAccount whose Role lacks pods/portforward is refused by a SelfSubjectAccessReview,
// and the error names the rule to add. So is a read of a Secret other than the one granted.
func TestAccessIsChecked(t *testing.T) {
	kube := testworld.Cluster(t)
	cfg := serviceAccountConfig(t, kube, "no-forward", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "services"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"db"}},
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spec := forwardspec.Spec{Kind: forwardspec.KindService, Name: "db"}
	ok := &forwardspec.SecretRef{Name: "db", Key: "password"}
	err = CheckAccess(t.Context(), client, kube.Namespace, Needs(&spec, ok))
	var denied *AccessError
	if !errors.As(err, &denied) || len(denied.Missing) != 1 || denied.Missing[0] != (Rule{Resource: "pods/portforward", Verb: "create"}) {
		t.Fatalf("without pods/portforward: %v", err)
	}
	for _, want := range []string{"may not create pods/portforward in namespace " + kube.Namespace, "resources: [pods/portforward]\n  verbs: [create]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q:\n%v", want, err)
		}
	}
	err = CheckAccess(t.Context(), client, kube.Namespace, Needs(nil, &forwardspec.SecretRef{Name: "other", Key: "password"}))
	if !errors.As(err, &denied) || !strings.Contains(err.Error(), "resourceNames: [other]") {
		t.Errorf("another Secret: %v", err)
	}
	// The admin may do all of it.
	if err := CheckAccess(t.Context(), kube.Client, kube.Namespace, Needs(&spec, ok)); err != nil {
		t.Errorf("admin: %v", err)
	}

	// And the API server refuses the forward itself, as the review said.
	db := testworld.Postgres(t)
	dbPod(t, kube, "db-0", nil)
	waitReady(t, kube, "db-0")
	f, err := Start(t.Context(), Options{Config: cfg, Client: client, Namespace: kube.Namespace, Spec: forwardspec.Spec{Kind: forwardspec.KindPod, Name: "db-0"}, PodWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := query(ctx, f, db); err == nil {
		t.Error("a query went through a forward the user may not open")
	}
}

func TestReadSecret(t *testing.T) {
	kube := testworld.Cluster(t)
	if _, err := kube.Client.CoreV1().Secrets(kube.Namespace).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "identity-postgresql-id"},
		Data:       map[string][]byte{"postgresql-password": []byte("s3cret value"), "postgresql-postgres-password": []byte("other")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := ReadSecret(t.Context(), kube.Client, kube.Namespace, forwardspec.SecretRef{Name: "identity-postgresql-id", Key: "postgresql-password"})
	if err != nil || v != "s3cret value" {
		t.Errorf("ReadSecret = %q, %v", v, err)
	}
	for ref, want := range map[forwardspec.SecretRef]string{
		{Name: "identity-postgresql-id", Key: "password"}: "has no key password (its keys: postgresql-password, postgresql-postgres-password)",
		{Name: "missing", Key: "password"}:                "no Secret missing in namespace " + kube.Namespace,
	} {
		_, err := ReadSecret(t.Context(), kube.Client, kube.Namespace, ref)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want %q", ref, err, want)
		}
	}
}

func ExampleRule_YAML() {
	fmt.Println(Rule{Resource: "secrets", Verb: "get", Name: "identity-postgresql-id"}.YAML())
	// Output:
	// - apiGroups: [""]
	//   resources: [secrets]
	//   verbs: [get]
	//   resourceNames: [identity-postgresql-id]
}
