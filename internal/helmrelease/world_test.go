package helmrelease_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

const (
	chart13 = "../../testdata/charts/identity/2.1.0"
	chart14 = "../../testdata/charts/identity/3.0.0"
)

// install13 installs the Identity Service 1.3-like chart with helm's own waiter, as a user of
// the real chart would, into the test's namespace.
func install13(t *testing.T, kube testworld.Kube, values map[string]any) *helmrelease.Client {
	t.Helper()
	client, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: kube.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := client.Install(t.Context(), "identity", chart13, values, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Revision != 1 || rel.Status != "deployed" || rel.ChartVersion != "2.1.0" {
		t.Fatalf("installed %+v, want revision 1 deployed from chart 2.1.0", rel)
	}
	return client
}

func TestInstall13BecomesReadyOnTheSimulatedCluster(t *testing.T) {
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	client := install13(t, kube, map[string]any{"postgresql": db.ChartValues()})

	for _, name := range []string{"identity-id-keycloak", "identity-postgresql-id"} {
		sts, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sts.Status.ReadyReplicas != *sts.Spec.Replicas {
			t.Errorf("StatefulSet %s: %d/%d ready after helm's wait", name, sts.Status.ReadyReplicas, *sts.Spec.Replicas)
		}
	}
	// The Keycloak pods read the database settings of the real local server.
	secret, err := kube.Client.CoreV1().Secrets(kube.Namespace).Get(t.Context(), "identity-id-keycloak-db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(secret.Data["DB_ADDR"]) != "127.0.0.1" || string(secret.Data["DB_DATABASE"]) != db.Database {
		t.Errorf("database secret = %v", secret.Data)
	}

	cur, err := client.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	var rollbackHooks []string
	for _, h := range cur.Hooks {
		if h.RunsOn("pre-rollback") || h.RunsOn("post-rollback") {
			rollbackHooks = append(rollbackHooks, h.Kind+"/"+h.Name)
		}
	}
	if len(rollbackHooks) == 0 {
		t.Errorf("revision 1 has no rollback hooks; the 2.1.0-like chart must carry them (hooks: %+v)", cur.Hooks)
	}
}

// TestPlainUpgradeHitsTheImmutableSelectorTrap shows the trap the tool exists for: a plain helm
// upgrade from the 1.3-like to the 1.4-like chart fails on the postgres StatefulSet's selector
// after it has already moved Keycloak to the new image, and the plan detects it beforehand.
func TestPlainUpgradeHitsTheImmutableSelectorTrap(t *testing.T) {
	kube := testworld.Cluster(t)
	client := install13(t, kube, nil)

	renderer := helmrelease.Renderer{Client: client, Spec: helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true}}
	cur, err := renderer.Current(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	target, err := renderer.Render(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := renderer.Diff(cur, target)
	if err != nil {
		t.Fatal(err)
	}
	var trapped []string
	for _, c := range changes {
		if len(c.Immutable) > 0 {
			trapped = append(trapped, c.Resource()+":"+strings.Join(c.Immutable, ","))
		}
	}
	if strings.Join(trapped, ";") != "StatefulSet/identity-postgresql-id:spec.selector" {
		t.Errorf("immutable changes found = %v, want only the postgres StatefulSet's selector", trapped)
	}
	// The dry run changed nothing.
	if after, _ := client.Current("identity"); after.Revision != 1 {
		t.Fatalf("render stored revision %d", after.Revision)
	}

	err = client.PlainUpgrade(t.Context(), "identity", chart14)
	if err == nil || !strings.Contains(err.Error(), "field is immutable") {
		t.Fatalf("plain helm upgrade error = %v, want the immutable selector error", err)
	}
	if testing.Verbose() {
		t.Logf("plain helm upgrade: %v", err)
	}
	keycloak, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if image := keycloak.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(image, ":1.4.0") {
		t.Errorf("Keycloak image after the failed upgrade = %s; helm leaves it half-applied at 1.4.0", image)
	}
	cur, err = client.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != 2 || cur.Status != "failed" {
		t.Errorf("after the failed upgrade: revision %d %s, want 2 failed", cur.Revision, cur.Status)
	}
}

func TestCrashLoopRestartsRise(t *testing.T) {
	kube := testworld.Cluster(t)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "crashy"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "crashy"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "crashy", "identity-upgrade.test/fault": "crashloop"}},
				Spec: corev1.PodSpec{
					Containers:  []corev1.Container{{Name: "keycloak", Image: "alfresco/alfresco-identity-service:1.4.0"}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}
	if _, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var seen []int32
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := kube.Client.CoreV1().Pods(kube.Namespace).Get(ctx, "crashy-0", metav1.GetOptions{})
		if err != nil || len(pod.Status.ContainerStatuses) == 0 {
			return false, nil
		}
		cs := pod.Status.ContainerStatuses[0]
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.Ready {
			return false, nil
		}
		if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode == 0 {
			t.Errorf("CrashLoopBackOff without a failed last state: %+v", cs)
		}
		if len(seen) == 0 || cs.RestartCount > seen[len(seen)-1] {
			seen = append(seen, cs.RestartCount)
		}
		return len(seen) >= 3, nil
	})
	if err != nil {
		t.Fatalf("restart counts seen in CrashLoopBackOff: %v; want three rising values: %v", seen, err)
	}
}
