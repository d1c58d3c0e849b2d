package kubelock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

func TestLeaseName(t *testing.T) {
	long := strings.Repeat("a", 53)
	tests := []struct {
		release string
		want    string // "" means: only check validity and the prefix
	}{
		{"identity", "identity-upgrade-identity"},
		{"my-release-1", "identity-upgrade-my-release-1"},
		{"My_Release", ""},
		{long, ""},
		{long[:52] + "b", ""},
		{"a.b", ""},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := LeaseName(tt.release)
		if tt.want != "" && got != tt.want {
			t.Errorf("LeaseName(%q) = %q, want %q", tt.release, got, tt.want)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("LeaseName(%q) = %q, not a DNS-1123 label: %v", tt.release, got, errs)
		}
		if !strings.HasPrefix(got, "identity-upgrade-") {
			t.Errorf("LeaseName(%q) = %q, want the identity-upgrade- prefix", tt.release, got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("LeaseName(%q) = LeaseName(%q) = %q", tt.release, other, got)
		}
		seen[got] = tt.release
	}
}

func TestLockExcludesAnotherHolder(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	a := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "run-a"}
	b := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "run-b"}

	unlockA, err := a.Lock(ctx, "identity")
	if err != nil {
		t.Fatalf("first Lock: %v", err)
	}
	lease := getLease(t, kube.Client.CoordinationV1().Leases(kube.Namespace), "identity-upgrade-identity")
	if got := *lease.Spec.HolderIdentity; got != "run-a" {
		t.Errorf("holder = %q, want run-a", got)
	}
	if got := *lease.Spec.LeaseDurationSeconds; got != int32(DefaultDuration/time.Second) {
		t.Errorf("leaseDurationSeconds = %d, want %d", got, int32(DefaultDuration/time.Second))
	}
	if lease.Spec.AcquireTime == nil || lease.Spec.RenewTime == nil {
		t.Errorf("acquireTime/renewTime not set: %+v", lease.Spec)
	}

	_, err = b.Lock(ctx, "identity")
	if !errors.Is(err, rollout.ErrLocked) {
		t.Fatalf("second Lock: err = %v, want ErrLocked", err)
	}
	t.Logf("second Lock: %v", err)
	for _, want := range []string{`"run-a"`, "since", "kubectl delete lease identity-upgrade-identity -n " + kube.Namespace} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second Lock error %q does not contain %q", err, want)
		}
	}
	// The same holder is refused too: a lock is not re-entrant.
	if _, err := a.Lock(ctx, "identity"); !errors.Is(err, rollout.ErrLocked) {
		t.Errorf("Lock by the same holder: err = %v, want ErrLocked", err)
	}
	// Another release is independent.
	unlockOther, err := b.Lock(ctx, "other")
	if err != nil {
		t.Fatalf("Lock of another release: %v", err)
	}

	if err := unlockA(ctx); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if err := unlockA(ctx); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	unlockB, err := b.Lock(ctx, "identity")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	if err := unlockB(ctx); err != nil {
		t.Fatalf("unlock b: %v", err)
	}
	if err := unlockOther(ctx); err != nil {
		t.Fatalf("unlock other: %v", err)
	}
	leases, err := kube.Client.CoordinationV1().Leases(kube.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Items) != 0 {
		t.Errorf("leases left after unlock: %d", len(leases.Items))
	}
}

func TestLockTakesOverExpiredLease(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	leases := kube.Client.CoordinationV1().Leases(kube.Namespace)
	createStale(t, leases, "identity-upgrade-identity", "killed-run", time.Hour)

	l := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "run-new"}
	unlock, err := l.Lock(ctx, "identity")
	if err != nil {
		t.Fatalf("Lock over an expired lease: %v", err)
	}
	lease := getLease(t, leases, "identity-upgrade-identity")
	if got := *lease.Spec.HolderIdentity; got != "run-new" {
		t.Errorf("holder = %q, want run-new", got)
	}
	if lease.Spec.LeaseTransitions == nil || *lease.Spec.LeaseTransitions != 1 {
		t.Errorf("leaseTransitions = %v, want 1", lease.Spec.LeaseTransitions)
	}
	if time.Since(lease.Spec.RenewTime.Time) > time.Minute {
		t.Errorf("renewTime %s not fresh", lease.Spec.RenewTime)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLockRefusesLiveLeaseByHand(t *testing.T) {
	kube := testworld.Cluster(t)
	leases := kube.Client.CoordinationV1().Leases(kube.Namespace)
	// Renewed 10s ago, valid for 2 minutes: alive.
	createStale(t, leases, "identity-upgrade-identity", "live-run", 10*time.Second)
	l := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "run-new"}
	_, err := l.Lock(t.Context(), "identity")
	if !errors.Is(err, rollout.ErrLocked) || !strings.Contains(err.Error(), "live-run") {
		t.Fatalf("err = %v, want ErrLocked naming live-run", err)
	}
}

// TestLockRace has two runs lock at the same moment, on a free release and on an expired
// lease (where both read it and race their updates): exactly one must win every time.
func TestLockRace(t *testing.T) {
	kube := testworld.Cluster(t)
	leases := kube.Client.CoordinationV1().Leases(kube.Namespace)
	for _, stale := range []bool{false, true} {
		for i := range 6 {
			release := fmt.Sprintf("race-%t-%d", stale, i)
			if stale {
				createStale(t, leases, LeaseName(release), "killed-run", time.Hour)
			}
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				unlocks [2]func(context.Context) error
				errs    [2]error
			)
			for j := range 2 {
				wg.Go(func() {
					l := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: fmt.Sprintf("racer-%d", j)}
					<-start
					unlocks[j], errs[j] = l.Lock(t.Context(), release)
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for j := range 2 {
				switch {
				case errs[j] == nil:
					won++
				case !errors.Is(errs[j], rollout.ErrLocked):
					t.Errorf("%s: racer %d: err = %v, want nil or ErrLocked", release, j, errs[j])
				}
			}
			if won != 1 {
				t.Errorf("%s: %d winners, want exactly 1 (errs: %v)", release, won, errs)
			}
			if stale {
				// One takeover, not two in a row.
				lease := getLease(t, leases, LeaseName(release))
				if n := lease.Spec.LeaseTransitions; n == nil || *n != 1 {
					t.Errorf("%s: leaseTransitions = %v, want 1", release, n)
				}
			}
			for j := range 2 {
				if unlocks[j] != nil {
					if err := unlocks[j](t.Context()); err != nil {
						t.Errorf("%s: unlock racer %d: %v", release, j, err)
					}
				}
			}
		}
	}
}

func TestLockRenewsUntilUnlock(t *testing.T) {
	kube := testworld.Cluster(t)
	leases := kube.Client.CoordinationV1().Leases(kube.Namespace)
	l := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "long-run", Duration: 3 * time.Second}

	// The run's context is cancelled right after locking (a SIGTERM): the lease must still
	// be renewed, and unlock must work on a fresh context.
	lockCtx, cancel := context.WithCancel(t.Context())
	unlock, err := l.Lock(lockCtx, "identity")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	first := getLease(t, leases, "identity-upgrade-identity")
	if got := *first.Spec.LeaseDurationSeconds; got != 3 {
		t.Errorf("leaseDurationSeconds = %d, want 3", got)
	}
	// Longer than the lease duration: without renewal, another run could take it over.
	time.Sleep(4500 * time.Millisecond)
	renewed := getLease(t, leases, "identity-upgrade-identity")
	if !renewed.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
		t.Errorf("renewTime did not advance: %s then %s", first.Spec.RenewTime, renewed.Spec.RenewTime)
	}
	if age := time.Since(renewed.Spec.RenewTime.Time); age > 2*time.Second {
		t.Errorf("renewTime is %s old, want at most Duration/3 plus slack", age)
	}
	other := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "other-run", Duration: 3 * time.Second}
	if _, err := other.Lock(t.Context(), "identity"); !errors.Is(err, rollout.ErrLocked) {
		t.Fatalf("Lock of a renewed lease: err = %v, want ErrLocked", err)
	}

	if err := unlock(context.Background()); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if _, err := leases.Get(t.Context(), "identity-upgrade-identity", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease after unlock: err = %v, want NotFound", err)
	}
	// No renewal after unlock re-creates or touches anything.
	time.Sleep(1500 * time.Millisecond)
	if _, err := leases.Get(t.Context(), "identity-upgrade-identity", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease 1.5s after unlock: err = %v, want NotFound", err)
	}
}

// TestUnlockLeavesATakenOverLease: a run whose lease was taken over while it held it (it
// could not renew for longer than the duration) must not delete the new holder's lease.
func TestUnlockLeavesATakenOverLease(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	leases := kube.Client.CoordinationV1().Leases(kube.Namespace)
	l := &Locker{Client: kube.Client, Namespace: kube.Namespace, Holder: "slow-run"}
	unlock, err := l.Lock(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	lease := getLease(t, leases, "identity-upgrade-identity")
	thief := "other-run"
	lease.Spec.HolderIdentity = &thief
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = unlock(ctx)
	if err == nil || !strings.Contains(err.Error(), "other-run") {
		t.Errorf("unlock: err = %v, want one naming the new holder", err)
	}
	if got := *getLease(t, leases, "identity-upgrade-identity").Spec.HolderIdentity; got != thief {
		t.Errorf("holder after unlock = %q, want %q left in place", got, thief)
	}
}

func getLease(t *testing.T, leases interface {
	Get(context.Context, string, metav1.GetOptions) (*coordinationv1.Lease, error)
}, name string) *coordinationv1.Lease {
	t.Helper()
	lease, err := leases.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease %s: %v", name, err)
	}
	return lease
}

// createStale creates a lease held by holder, last renewed `ago`, valid for 2 minutes.
func createStale(t *testing.T, leases interface {
	Create(context.Context, *coordinationv1.Lease, metav1.CreateOptions) (*coordinationv1.Lease, error)
}, name, holder string, ago time.Duration) {
	t.Helper()
	then := metav1.NewMicroTime(time.Now().Add(-ago))
	seconds := int32(120)
	_, err := leases.Create(t.Context(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: &holder, LeaseDurationSeconds: &seconds, AcquireTime: &then, RenewTime: &then,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create lease %s: %v", name, err)
	}
}
