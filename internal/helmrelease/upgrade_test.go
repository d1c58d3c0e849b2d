package helmrelease_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

const (
	keycloakSts = "identity-id-keycloak"
	postgresSts = "identity-postgresql-id"
	postgresPod = postgresSts + "-0"
)

func to14(client *helmrelease.Client) helmrelease.Renderer {
	return helmrelease.Renderer{Client: client, Spec: helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true}}
}

func statefulSet(t *testing.T, kube testworld.Kube, name string) *appsv1.StatefulSet {
	t.Helper()
	sts, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sts
}

func ready(sts *appsv1.StatefulSet) bool {
	return sts.Status.ObservedGeneration >= sts.Generation && sts.Status.ReadyReplicas == *sts.Spec.Replicas
}

// waitReady polls the StatefulSet until all its replicas are ready, for up to a minute.
func waitReady(t *testing.T, kube testworld.Kube, name string) {
	t.Helper()
	var last *appsv1.StatefulSet
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		sts, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = sts
		return ready(sts), nil
	})
	if err != nil {
		t.Fatalf("StatefulSet %s not ready: %v (status %+v)", name, err, last.Status)
	}
}

// staysUnready checks that the StatefulSet does not become ready for a while: the trap an
// orphaned pod sets for the re-created StatefulSet.
func staysUnready(t *testing.T, kube testworld.Kube, name string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if sts := statefulSet(t, kube, name); ready(sts) {
			t.Fatalf("StatefulSet %s became ready with the orphaned pod still there (status %+v)", name, sts.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// orphan orphans the postgres StatefulSet and checks that it is gone while its pod stays,
// released by the garbage collector.
func orphan(t *testing.T, kube testworld.Kube, r helmrelease.Renderer) {
	t.Helper()
	podBefore, err := kube.Client.CoreV1().Pods(kube.Namespace).Get(t.Context(), postgresPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.OrphanStatefulSets(t.Context(), []string{postgresSts, "no-such-statefulset"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(t.Context(), postgresSts, metav1.GetOptions{}); err == nil {
		t.Fatalf("StatefulSet %s still exists after OrphanStatefulSets", postgresSts)
	}
	pod, err := kube.Client.CoreV1().Pods(kube.Namespace).Get(t.Context(), postgresPod, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the orphaned pod is gone: %v", err)
	}
	if pod.UID != podBefore.UID || pod.DeletionTimestamp != nil || metav1.GetControllerOf(pod) != nil {
		t.Fatalf("pod %s after the orphan delete: uid %s (was %s), deleting %v, controller %v; want the same pod, kept, with no controller",
			postgresPod, pod.UID, podBefore.UID, pod.DeletionTimestamp, metav1.GetControllerOf(pod))
	}
}

func keycloakImage(t *testing.T, kube testworld.Kube) string {
	t.Helper()
	return statefulSet(t, kube, keycloakSts).Spec.Template.Spec.Containers[0].Image
}

// TestOrphanRecreateUpgradeAndRollback walks the vendor's way through the immutable selector,
// automated, in both directions: orphan the postgres StatefulSet, upgrade (or roll back), then
// replace the orphaned pod that keeps the new StatefulSet at 0/1.
func TestOrphanRecreateUpgradeAndRollback(t *testing.T) {
	kube := testworld.Cluster(t)
	r := to14(install13(t, kube, nil))
	ctx := t.Context()

	cur, err := r.Current(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	target, err := r.Render(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := r.Diff(cur, target)
	if err != nil {
		t.Fatal(err)
	}
	trapped := rollout.ImmutableStatefulSets(changes, kube.Namespace)
	if !slices.Equal(trapped, []string{postgresSts}) {
		t.Fatalf("ImmutableStatefulSets = %v, want [%s]", trapped, postgresSts)
	}

	// 2.1.0 -> 3.0.0
	orphan(t, kube, r)
	start := time.Now()
	up, err := r.Upgrade(ctx, "identity", time.Minute)
	if err != nil {
		t.Fatalf("upgrade after the orphan delete: %v", err)
	}
	t.Logf("upgrade took %v", time.Since(start))
	if up.Revision != 2 || up.Status != "deployed" || up.ChartVersion != "3.0.0" {
		t.Fatalf("upgrade returned revision %d %s chart %s, want 2 deployed 3.0.0", up.Revision, up.Status, up.ChartVersion)
	}
	if image := keycloakImage(t, kube); !strings.HasSuffix(image, ":1.4.0") {
		t.Errorf("Keycloak image after the upgrade = %s, want tag 1.4.0", image)
	}
	staysUnready(t, kube, postgresSts, 2*time.Second)
	replaced, err := r.ReplaceOrphanedPods(ctx, trapped)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(replaced, []string{postgresPod}) {
		t.Fatalf("ReplaceOrphanedPods = %v, want [%s]", replaced, postgresPod)
	}
	// The orphan is gone and the StatefulSet was told so: its controller need not wait out
	// the back-off of its failed creations.
	if sts, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Get(ctx, postgresSts, metav1.GetOptions{}); err != nil ||
		!strings.HasSuffix(sts.Annotations["identity-upgrade/replaced-orphaned-pods"], " "+postgresPod) {
		t.Errorf("StatefulSet %s not asked to create its pods: %v %v", postgresSts, sts.Annotations, err)
	}
	waitReady(t, kube, postgresSts)
	// Once the new StatefulSet owns its pod, there is nothing left to replace.
	if again, err := r.ReplaceOrphanedPods(ctx, trapped); err != nil || len(again) != 0 {
		t.Errorf("ReplaceOrphanedPods on a healthy StatefulSet = %v, %v; want nothing deleted", again, err)
	}

	// 3.0.0 -> back to revision 1 (2.1.0): the same trap in reverse, and the target's rollback
	// hooks skipped.
	orphan(t, kube, r)
	start = time.Now()
	back, err := r.Rollback(ctx, "identity", 1, rollout.RollbackOptions{DisableHooks: true, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("rollback after the orphan delete: %v", err)
	}
	t.Logf("rollback took %v", time.Since(start))
	if back.Revision != 3 || back.Status != "deployed" || back.ChartVersion != "2.1.0" {
		t.Fatalf("rollback returned revision %d %s chart %s, want 3 deployed 2.1.0", back.Revision, back.Status, back.ChartVersion)
	}
	history, err := r.Client.History("identity")
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, h := range history {
		statuses = append(statuses, h.Status)
	}
	if strings.Join(statuses, ",") != "superseded,superseded,deployed" {
		t.Errorf("history statuses = %v, want superseded,superseded,deployed", statuses)
	}
	if image := keycloakImage(t, kube); image != "alfresco/alfresco-identity-service:1.3" {
		t.Errorf("Keycloak image after the rollback = %s, want alfresco/alfresco-identity-service:1.3", image)
	}
	if deployed, err := r.Deployed(ctx, "identity"); err != nil || deployed.Revision != 3 {
		t.Errorf("Deployed = revision %d, %v; want 3", deployed.Revision, err)
	}
	// No hook ran: the pre-rollback hook's Job would exist now.
	if jobs, err := kube.Client.BatchV1().Jobs(kube.Namespace).List(ctx, metav1.ListOptions{}); err != nil || len(jobs.Items) != 0 {
		t.Errorf("jobs after a rollback without hooks: %d, %v; want none", len(jobs.Items), err)
	}
	staysUnready(t, kube, postgresSts, 2*time.Second)
	replaced, err = r.ReplaceOrphanedPods(ctx, trapped)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(replaced, []string{postgresPod}) {
		t.Fatalf("ReplaceOrphanedPods after the rollback = %v, want [%s]", replaced, postgresPod)
	}
	waitReady(t, kube, postgresSts)
}

// TestUnlockAfterAnInterruptedUpgrade: a failed upgrade reports the revision helm recorded; a
// run killed during an upgrade leaves it pending-upgrade, which locks the release until Unlock.
func TestUnlockAfterAnInterruptedUpgrade(t *testing.T) {
	kube := testworld.Cluster(t)
	r := to14(install13(t, kube, nil))
	ctx := t.Context()

	// Without the orphan re-create the upgrade fails after helm recorded revision 2.
	failed, err := r.Upgrade(ctx, "identity", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "field is immutable") {
		t.Fatalf("upgrade error = %v, want the immutable selector", err)
	}
	if failed.Revision != 2 || failed.Status != "failed" {
		t.Fatalf("failed upgrade returned revision %d %q, want 2 failed", failed.Revision, failed.Status)
	}

	// As if the run had been killed during the upgrade.
	if err := r.Client.SetStoredStatus("identity", 2, "pending-upgrade"); err != nil {
		t.Fatal(err)
	}
	pending, err := r.Current(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if !pending.Pending() {
		t.Fatalf("current = %d %s, want pending", pending.Revision, pending.Status)
	}
	locked, err := r.Upgrade(ctx, "identity", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "another operation") || locked.Revision != 0 {
		t.Fatalf("upgrade of a pending release = revision %d, %v; want helm's refusal and no revision", locked.Revision, err)
	}
	deployed, err := r.Deployed(ctx, "identity")
	if err != nil || deployed.Revision != 1 {
		t.Fatalf("Deployed = revision %d, %v; want 1", deployed.Revision, err)
	}
	if err := r.Unlock(ctx, deployed); !errors.Is(err, helmrelease.ErrNotPending) {
		t.Fatalf("unlock of the deployed revision = %v, want ErrNotPending", err)
	}
	if cur, _ := r.Current(ctx, "identity"); cur.Status != "pending-upgrade" {
		t.Fatalf("a refused unlock changed the release: %s", cur.Status)
	}

	if err := r.Unlock(ctx, pending); err != nil {
		t.Fatal(err)
	}
	cur, err := r.Current(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != 2 || cur.Status != "failed" {
		t.Fatalf("after unlock: revision %d %s, want 2 failed", cur.Revision, cur.Status)
	}
	desc, err := r.Client.StoredDescription("identity", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := "marked failed by identity-upgrade: left pending-upgrade by an interrupted run"; desc != want {
		t.Errorf("description = %q, want %q", desc, want)
	}
	if err := r.Unlock(ctx, pending); !errors.Is(err, helmrelease.ErrNotPending) {
		t.Errorf("second unlock = %v, want ErrNotPending", err)
	}

	orphan(t, kube, r)
	up, err := r.Upgrade(ctx, "identity", time.Minute)
	if err != nil {
		t.Fatalf("upgrade after unlock: %v", err)
	}
	if up.Revision != 3 || up.Status != "deployed" || up.ChartVersion != "3.0.0" {
		t.Fatalf("upgrade after unlock = revision %d %s chart %s, want 3 deployed 3.0.0", up.Revision, up.Status, up.ChartVersion)
	}
}

// TestUpgradeFromAnUnlockedRevisionReplacesWhatItApplied: a run killed during helm's update
// of an upgrade to fault=unschedulable left revision 2 pending with its nodeSelector applied.
// helm's merge from revision 1's manifest would keep it; the upgrade after the unlock replaces
// the objects. From a deployed latest revision the upgrade merges, keeping what others set.
func TestUpgradeFromAnUnlockedRevisionReplacesWhatItApplied(t *testing.T) {
	kube := testworld.Cluster(t)
	client := install13(t, kube, nil)
	ctx := t.Context()
	interrupted := helmrelease.UpgradeSpec{Chart: chart13, ReuseValues: true, Set: []string{"fault=unschedulable"}}
	if _, err := client.Upgrade(ctx, "identity", interrupted, time.Minute); err != nil {
		t.Fatal(err)
	}
	if len(statefulSet(t, kube, keycloakSts).Spec.Template.Spec.NodeSelector) == 0 {
		t.Fatal("the interrupted revision applied no nodeSelector")
	}
	for revision, status := range map[int]string{2: "pending-upgrade", 1: "deployed"} {
		if err := client.SetStoredStatus("identity", revision, status); err != nil {
			t.Fatal(err)
		}
	}
	r := to14(client)
	pending, err := r.Current(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(ctx, pending); err != nil {
		t.Fatal(err)
	}

	orphan(t, kube, r)
	up, err := r.Upgrade(ctx, "identity", time.Minute)
	if err != nil || up.Revision != 3 || up.Status != "deployed" {
		t.Fatalf("upgrade after the unlock = revision %d %s, %v; want 3 deployed", up.Revision, up.Status, err)
	}
	if ns := statefulSet(t, kube, keycloakSts).Spec.Template.Spec.NodeSelector; len(ns) != 0 {
		t.Errorf("the upgrade kept the interrupted revision's nodeSelector %v", ns)
	}

	patch := []byte(`{"metadata":{"annotations":{"example.com/owner":"ops"}}}`)
	if _, err := kube.Client.AppsV1().StatefulSets(kube.Namespace).Patch(ctx, keycloakSts, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if up, err := r.Upgrade(ctx, "identity", time.Minute); err != nil || up.Revision != 4 {
		t.Fatalf("upgrade from the deployed revision 3 = revision %d, %v; want 4", up.Revision, err)
	}
	if got := statefulSet(t, kube, keycloakSts).Annotations["example.com/owner"]; got != "ops" {
		t.Errorf("an upgrade from a deployed revision dropped an annotation set by someone else (%q): it replaced instead of merging", got)
	}
}

// TestUpgradeThatFailsToRenderRecordsNothing: a failure before helm records a revision returns
// no revision, and the release stays as it was.
func TestUpgradeThatFailsToRenderRecordsNothing(t *testing.T) {
	kube := testworld.Cluster(t)
	client := install13(t, kube, nil)
	ctx := t.Context()
	r := helmrelease.Renderer{Client: client, Spec: helmrelease.UpgradeSpec{
		Chart: chart14, ReuseValues: true, Set: []string{"fault=template-error"},
	}}
	rel, err := r.Upgrade(ctx, "identity", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "template-error") {
		t.Fatalf("upgrade error = %v, want the chart's template-error", err)
	}
	if rel.Revision != 0 {
		t.Errorf("failed render returned revision %d, want 0", rel.Revision)
	}
	cur, err := r.Current(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != 1 || cur.Status != "deployed" {
		t.Errorf("after the failed render: revision %d %s, want 1 deployed", cur.Revision, cur.Status)
	}
	if _, err := r.Rollback(ctx, "identity", 0, rollout.RollbackOptions{}); err == nil {
		t.Error("rollback to revision 0 (helm's previous) was accepted")
	}
	if _, err := r.Rollback(ctx, "identity", 7, rollout.RollbackOptions{DisableHooks: true}); err == nil {
		t.Error("rollback to a revision that does not exist was accepted")
	}
	if cur, _ := r.Current(ctx, "identity"); cur.Revision != 1 {
		t.Errorf("refused rollbacks recorded revision %d", cur.Revision)
	}
}

func TestValuesOfARevision(t *testing.T) {
	kube := testworld.Cluster(t)
	client := install13(t, kube, map[string]any{"postgresql": map[string]any{"host": "db.identity.test", "port": 6543}})
	ctx := t.Context()

	data, err := client.Values(ctx, "identity", 1)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		PostgreSQL map[string]any `json:"postgresql"`
		Image      any            `json:"image"`
	}
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatalf("values are not YAML: %v\n%s", err, data)
	}
	if got.PostgreSQL["host"] != "db.identity.test" || got.PostgreSQL["port"] != float64(6543) {
		t.Errorf("values of revision 1 = %s, want the install's postgresql host and port", data)
	}
	if got.Image != nil {
		t.Errorf("values of revision 1 carry the chart's defaults (image): %s", data)
	}
	if _, err := client.Values(ctx, "identity", 2); !errors.Is(err, helmrelease.ErrReleaseNotFound) {
		t.Errorf("values of a missing revision: %v, want ErrReleaseNotFound", err)
	}
}

// TestRollbackHookFailureDoesNotLockTheRelease: rolling back to 2.1.0 with its hooks runs the
// pre-rollback Job, and then the post-rollback Job waits forever for a claim only 2.1.0's
// pre-upgrade hook creates. helm gives up after the timeout and leaves the new revision
// pending-rollback; Rollback marks it failed so the release is not locked.
func TestRollbackHookFailureDoesNotLockTheRelease(t *testing.T) {
	kube := testworld.Cluster(t)
	r := to14(install13(t, kube, nil))
	ctx := t.Context()
	orphan(t, kube, r)
	if _, err := r.Upgrade(ctx, "identity", time.Minute); err != nil {
		t.Fatal(err)
	}
	orphan(t, kube, r)

	start := time.Now()
	back, err := r.Rollback(ctx, "identity", 1, rollout.RollbackOptions{Timeout: 15 * time.Second})
	t.Logf("rollback with hooks: %v after %v", err, time.Since(start))
	if err == nil {
		t.Fatal("rollback with 2.1.0's hooks succeeded; want the post-rollback hook to time out")
	}
	if back.Revision != 3 || back.Status != "failed" {
		t.Fatalf("rollback returned revision %d %q, want 3 failed (not pending-rollback)", back.Revision, back.Status)
	}
	cur, err := r.Current(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != 3 || cur.Status != "failed" {
		t.Fatalf("stored revision %d %s, want 3 failed", cur.Revision, cur.Status)
	}
	desc, _ := r.Client.StoredDescription("identity", 3)
	if !strings.HasPrefix(desc, "marked failed by identity-upgrade: helm left it pending-rollback") {
		t.Errorf("description = %q", desc)
	}
	// The pre-rollback hooks ran (their ServiceAccount stays; the Job is deleted once it
	// succeeded), and the post-rollback Job is the one that hangs.
	if _, err := kube.Client.CoreV1().ServiceAccounts(kube.Namespace).Get(ctx, "identity-id-rollback", metav1.GetOptions{}); err != nil {
		t.Errorf("pre-rollback ServiceAccount: %v", err)
	}
	restore, err := kube.Client.BatchV1().Jobs(kube.Namespace).Get(ctx, "identity-id-rollback-restore", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("post-rollback Job: %v", err)
	}
	if restore.Status.Succeeded != 0 {
		t.Errorf("post-rollback Job succeeded: %+v", restore.Status)
	}
	// Not locked: a rollback without hooks goes through.
	again, err := r.Rollback(ctx, "identity", 1, rollout.RollbackOptions{DisableHooks: true, Timeout: time.Minute})
	if err != nil || again.Revision != 4 || again.Status != "deployed" {
		t.Fatalf("rollback after the failed one = revision %d %s, %v; want 4 deployed", again.Revision, again.Status, err)
	}
}
