package kubelock_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/kubelock"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestJournal keeps a journal in a real API server: none at first, written and read back,
// labelled like the Lease, and a write by a second process that has not seen the first's is
// refused (optimistic concurrency) instead of overwriting it.
func TestJournal(t *testing.T) {
	kube := testworld.Cluster(t)
	first := &kubelock.Journal{Client: kube.Client, Namespace: kube.Namespace}
	j, err := first.Read(t.Context(), "identity")
	if err != nil || j.Open() || j.Step != "" {
		t.Fatalf("no journal yet: %+v, %v", j, err)
	}
	entry := rollout.Journal{RunID: "run-1", Step: rollout.StepUpgrading, RecordedRevision: 4,
		Backup:  &rollout.JournalBackup{Name: "identity-r4", Locations: []string{"path:/b"}, SHA256: "ab"},
		Scaled:  []rollout.Scaled{{Kind: "StatefulSet", Name: "identity-id-keycloak", Replicas: 2}},
		Orphans: []string{"identity-postgresql-id"}}
	if err := first.Write(t.Context(), "identity", entry); err != nil {
		t.Fatal(err)
	}
	entry.Step = rollout.StepWaiting
	if err := first.Write(t.Context(), "identity", entry); err != nil {
		t.Fatalf("second write of the same process: %v", err)
	}
	second := &kubelock.Journal{Client: kube.Client, Namespace: kube.Namespace}
	got, err := second.Read(t.Context(), "identity")
	if err != nil || got.RunID != "run-1" || got.Step != rollout.StepWaiting || got.Backup.Name != "identity-r4" || got.Scaled[0].Replicas != 2 || got.Orphans[0] != "identity-postgresql-id" {
		t.Fatalf("read back %+v, %v", got, err)
	}
	cm, err := kube.Client.CoreV1().ConfigMaps(kube.Namespace).Get(t.Context(), kubelock.LeaseName("identity"), metav1.GetOptions{})
	if err != nil || cm.Labels[kubelock.ManagedByLabel] != kubelock.ManagedBy || cm.Annotations[kubelock.ReleaseAnnotation] != "identity" {
		t.Errorf("ConfigMap %v, %v", cm.ObjectMeta, err)
	}
	// The second process writes (it read the latest); the first, stale, is refused.
	got.Step = rollout.StepRecovering
	if err := second.Write(t.Context(), "identity", got); err != nil {
		t.Fatal(err)
	}
	entry.Step = rollout.StepClosed
	if err := first.Write(t.Context(), "identity", entry); err == nil || !strings.Contains(err.Error(), "written by another run") {
		t.Errorf("a stale write: %v, want a conflict", err)
	}
	if now, _ := second.Read(t.Context(), "identity"); now.Step != rollout.StepRecovering {
		t.Errorf("the stale write replaced the journal: %+v", now)
	}
}

// TestLockLost: a held lease deleted by someone else is noticed at the next renewal, and the
// Locker says so through Lost, with the reason.
func TestLockLost(t *testing.T) {
	kube := testworld.Cluster(t)
	l := &kubelock.Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "run-a", Duration: 3 * time.Second}
	unlock, err := l.Lock(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock(t.Context())
	select {
	case <-l.Lost("identity"):
		t.Fatal("lost before anything happened")
	default:
	}
	if err := kube.Client.CoordinationV1().Leases(kube.Namespace).Delete(t.Context(), kubelock.LeaseName("identity"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost("identity"):
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted lease was not noticed within 10 s (renewal every 1 s)")
	}
	if err := l.LostErr("identity"); err == nil || !strings.Contains(err.Error(), "was deleted while this run held it") {
		t.Errorf("LostErr = %v", err)
	}
}
