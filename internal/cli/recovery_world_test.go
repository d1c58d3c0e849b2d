package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// What the recovery leaves behind besides the release being back: helm's history telling what
// happened, and no pod orphaned by a rollback that failed half-way.

// storedHistory reads the release's revisions from helm's storage, as `helm history` does,
// oldest first.
func storedHistory(t *testing.T, w *installed) []*release.Release {
	t.Helper()
	rels, err := storage.Init(driver.NewSecrets(w.kube.Client.CoreV1().Secrets(w.kube.Namespace))).History("identity")
	if err != nil {
		t.Fatal(err)
	}
	releaseutil.SortByRevision(rels)
	return rels
}

// historyLines are the revisions as `helm history` prints them: revision, status, description.
func historyLines(rels []*release.Release) []string {
	var lines []string
	for _, r := range rels {
		lines = append(lines, fmt.Sprintf("%d %s %q", r.Version, r.Info.Status, r.Info.Description))
	}
	return lines
}

func TestRolledBackUpgradeIsFailedInTheHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	if r := w.upgrade(t.Context(), t, "--set", "fault=crashloop"); r.code != rollout.ExitRolledBack {
		t.Fatalf("exit %d, want %d (rolled back)\n%s", r.code, rollout.ExitRolledBack, r.stderr)
	}
	hist := storedHistory(t, w)
	t.Logf("history:\n%s", strings.Join(historyLines(hist), "\n"))
	if len(hist) != 3 {
		t.Fatalf("%d revisions, want 3: the install, the upgrade, the rollback", len(hist))
	}
	up, back := hist[1].Info, hist[2].Info
	if up.Status != release.StatusFailed {
		t.Errorf("the rolled-back upgrade (revision 2) is %s, want failed", up.Status)
	}
	for _, want := range []string{"marked failed by identity-upgrade: readiness: not ready: pod identity-id-keycloak-0", "exit code 1",
		"; rolling back to revision 1"} {
		if !strings.Contains(up.Description, want) {
			t.Errorf("revision 2's description %q lacks %q", up.Description, want)
		}
	}
	if back.Status != release.StatusDeployed || back.Description != "Rollback to 1" {
		t.Errorf("revision 3 is %s %q, want deployed \"Rollback to 1\"", back.Status, back.Description)
	}
	w.endState(t, false)
}

// TestFailedRollbackStillReplacesTheOrphanedPod: the rollback runs 2.1.0's rollback hooks
// (rollback-hooks: run); helm applies the objects, the postgres StatefulSet re-created with its
// old selector among them, and then gives up on the post-rollback Job, which waits for a claim
// that only 2.1.0's pre-upgrade hook creates. The rollback failed, but the pod the upgrade's
// StatefulSet left must not keep the re-created one at 0/1.
func TestFailedRollbackStillReplacesTheOrphanedPod(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	postgres := w.uid(t, "identity-postgresql-id")
	r := w.upgrade(t.Context(), t, "--set", "fault=crashloop", "--rollback-hooks", "run", "--timeout", "45s")
	if r.code != rollout.ExitNeedsHuman {
		t.Fatalf("exit %d, want %d (the rollback's hook fails)\n%s", r.code, rollout.ExitNeedsHuman, r.stderr)
	}
	checkRollbackLine(t, r.stdout)
	if w.uid(t, "identity-postgresql-id") == postgres {
		t.Fatal("the postgres StatefulSet was not re-created")
	}
	w.postgresRunsItsOwnPod(t)
}

// TestRollbackFailingOnAnObjectKeepsTheRecreatedStatefulSet: helm's update of the rollback
// creates the postgres StatefulSet, then fails on another object (the API server refuses the
// Secret's update: a ValidatingAdmissionPolicy of the test, put in place between the upgrade
// and the rollback). The StatefulSet must stay, with its own pod, not be cleaned up by helm
// and leave the upgrade's orphaned pod alone in its place.
func TestRollbackFailingOnAnObjectKeepsTheRecreatedStatefulSet(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	during := atStep("restore database", func(p *os.Process) {
		// The run waits while the policy is put in place; the rollback step comes next.
		p.Signal(syscall.SIGSTOP)
		defer p.Signal(syscall.SIGCONT)
		w.refuseSecretUpdates(t, "identity-id-keycloak-db")
	})
	r := w.start(t, nil, during, "--set", "fault=crashloop").wait(t)
	if r.code != rollout.ExitNeedsHuman {
		t.Fatalf("exit %d, want %d (the rollback fails on the Secret)\n%s", r.code, rollout.ExitNeedsHuman, r.stderr)
	}
	mustContain(t, r, "injected: the Secret's update is refused")
	checkRollbackLine(t, r.stdout)
	w.postgresRunsItsOwnPod(t)
}

// refuseSecretUpdates makes the API server refuse every update of the named Secret of w's
// namespace, with a ValidatingAdmissionPolicy and its binding (removed when the test ends), and
// waits until it does.
func (w *installed) refuseSecretUpdates(t *testing.T, secret string) {
	t.Helper()
	secrets := w.kube.Client.CoreV1().Secrets(w.kube.Namespace)
	w.admissionPolicy(t, "refuse-secret-updates-", admissionv1.Update, admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
		Resources: []string{"secrets"}}, secret, "injected: the Secret's update is refused", func(ctx context.Context) (bool, error) {
		// Probed with dry-run updates.
		s, err := secrets.Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err), nil
	})
}

// checkRollbackLine checks the timeline's rollback line: failed; and the orphaned pod replaced
// all the same.
func checkRollbackLine(t *testing.T, stdout string) {
	t.Helper()
	var rollback, replace string
	for line := range strings.Lines(stdout) {
		switch l := strings.TrimSpace(line); {
		case strings.HasPrefix(l, "rollback "):
			rollback = line
		case strings.HasPrefix(l, "replace orphaned pods "):
			replace = line
		}
	}
	if !strings.Contains(rollback, "FAILED") {
		t.Errorf("the rollback step reads %q; want it failed", rollback)
	}
	if !strings.Contains(replace, "replaced pods [identity-postgresql-id-0]") {
		t.Errorf("the orphan replacement reads %q; want it to have replaced pods [identity-postgresql-id-0]", replace)
	}
}

// postgresRunsItsOwnPod checks that the postgres StatefulSet exists, owns a pod its selector
// matches, and is ready.
func (w *installed) postgresRunsItsOwnPod(t *testing.T) {
	t.Helper()
	sets := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace)
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		sts, err := sets.Get(ctx, "identity-postgresql-id", metav1.GetOptions{})
		return err == nil && sts.Status.ReadyReplicas == 1, nil
	})
	sts, gerr := sets.Get(t.Context(), "identity-postgresql-id", metav1.GetOptions{})
	if gerr != nil {
		t.Fatalf("postgres StatefulSet after the failed rollback: %v", gerr)
	}
	if err != nil {
		t.Errorf("postgres StatefulSet not ready after the failed rollback: %+v", sts.Status)
	}
	pod, err := w.kube.Client.CoreV1().Pods(w.kube.Namespace).Get(t.Context(), "identity-postgresql-id-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !selector.Matches(labels.Set(pod.Labels)) {
		t.Errorf("pod %s has labels %v, which the StatefulSet's selector %s does not match: the upgrade's pod was left",
			pod.Name, pod.Labels, selector)
	}
	if owner := metav1.GetControllerOf(pod); owner == nil || owner.UID != sts.UID {
		t.Errorf("pod %s is controlled by %v, want the StatefulSet %s", pod.Name, owner, sts.UID)
	}
	if !podReady(pod) {
		t.Errorf("pod %s is not ready: %+v", pod.Name, pod.Status.Conditions)
	}
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestFailedRollbackIsRecovered: the rollback itself fails, because the API server refuses the
// old postgres StatefulSet that the orphan re-create must bring back (an admission policy of
// the test: a quota or a webhook does the same in the field). The run says so at once, with
// no readiness wait on a release that cannot be ready, and keeps its journal open. Once the
// obstacle is gone, recover finishes what the run could not: the old StatefulSet re-created,
// the upgrade's orphaned pod replaced, Keycloak back, the database as it was.
func TestFailedRollbackIsRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	tmp := t.TempDir()
	var allow func()
	during := atStep("restore database", func(p *os.Process) {
		// The run waits while the policy is put in place; the rollback step comes next.
		p.Signal(syscall.SIGSTOP)
		defer p.Signal(syscall.SIGCONT)
		allow = w.refuseStatefulSetCreates(t, "identity-postgresql-id")
	})
	r := w.start(t, []string{"RUNNER_TEMP=" + tmp}, during, "--set", "fault=crashloop", "--timeout", "60s").wait(t)
	if r.code != rollout.ExitNeedsHuman {
		t.Fatalf("exit %d, want %d (the rollback is refused)\n%s", r.code, rollout.ExitNeedsHuman, r.stderr)
	}
	mustContain(t, r, "injected: the StatefulSet's creation is refused")
	for _, step := range []string{"readiness after rollback", "verify database"} {
		if strings.Contains(r.stdout, "  "+step+" ") {
			t.Errorf("after the failed rollback the run still took step %q: a release that cannot be ready is waited for", step)
		}
	}
	if allow == nil {
		t.Fatal("the run never reached the restore")
	}
	allow()

	rec := w.recover(t, tmp)
	if rec.code != rollout.ExitRolledBack {
		t.Fatalf("recover: exit %d, want %d (recovered)\n%s", rec.code, rollout.ExitRolledBack, rec.stderr)
	}
	w.postgresRunsItsOwnPod(t)
	w.endState(t, false)
	if again := w.recover(t, tmp); again.code != rollout.ExitOK {
		t.Errorf("recover again: exit %d, want 0: the journal was left open\n%s", again.code, again.stdout)
	}
}

// refuseStatefulSetCreates makes the API server refuse the creation of the named StatefulSet in
// w's namespace (a ValidatingAdmissionPolicy and its binding) and waits until it does. The
// function it returns removes the policy and waits until creations pass again.
func (w *installed) refuseStatefulSetCreates(t *testing.T, name string) (allow func()) {
	t.Helper()
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.StatefulSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"probe": "x"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"probe": "x"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "probe"}}}},
	}}
	refused := func(ctx context.Context) (bool, error) {
		_, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Create(ctx, sts, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err), nil
	}
	return w.admissionPolicy(t, "refuse-sts-creates-", admissionv1.Create, admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
		Resources: []string{"statefulsets"}}, name, "injected: the StatefulSet's creation is refused", refused)
}

// admissionPolicy puts in place a ValidatingAdmissionPolicy, bound to w's namespace, that
// refuses op on the object named name of rule's resources with message, and waits until
// refused says it takes effect. The function it returns removes it and waits until refused
// says it no longer does; the test's end removes it too.
func (w *installed) admissionPolicy(t *testing.T, prefix string, op admissionv1.OperationType, rule admissionv1.Rule, name, message string,
	refused func(context.Context) (bool, error)) (remove func()) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	adm := w.kube.Client.AdmissionregistrationV1()
	policyName := prefix + w.kube.Namespace
	fail := admissionv1.Fail
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{Operations: []admissionv1.OperationType{op}, Rule: rule},
			}}},
			Validations: []admissionv1.Validation{{Expression: fmt.Sprintf("object.metadata.name != %q", name), Message: message}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policyName,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": w.kube.Namespace},
			}},
		},
	}
	if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	del := func() {
		adm.ValidatingAdmissionPolicyBindings().Delete(context.Background(), policyName, metav1.DeleteOptions{})
		adm.ValidatingAdmissionPolicies().Delete(context.Background(), policyName, metav1.DeleteOptions{})
	}
	t.Cleanup(del)
	// The API server compiles the policy in the background: probe until it refuses.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, refused); err != nil {
		t.Fatalf("the policy %s did not take effect: %v", policyName, err)
	}
	return func() {
		del()
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			r, err := refused(ctx)
			return !r, err
		})
		if err != nil {
			t.Fatalf("the policy %s stayed in effect after its removal: %v", policyName, err)
		}
	}
}
