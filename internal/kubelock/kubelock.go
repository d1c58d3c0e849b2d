// Package kubelock is the cluster-wide lock on a release: a coordination.k8s.io/v1 Lease per
// release, held and renewed for as long as a run works on the release, so that two runs (two
// workflow dispatches, a CLI beside an action) never overlap. A run that is killed stops
// renewing, and its lease expires by itself after Locker.Duration.
package kubelock

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// DefaultDuration is the lease duration when Locker.Duration is zero: short, so that the
// lease of a killed run expires soon, and renewed every third of it while held.
const DefaultDuration = 2 * time.Minute

// Labels and annotations put on the lease.
const (
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedBy         = "identity-upgrade"
	ReleaseAnnotation = "identity-upgrade/release"
)

var _ rollout.Locker = (*Locker)(nil)

// Locker takes the Lease lock of a release in Namespace.
type Locker struct {
	Client    kubernetes.Interface
	Namespace string
	// Holder names this run in the lease (e.g. hostname and pid, or the workflow run id and
	// attempt); it is what another run's error shows. Empty: hostname-pid-random, generated
	// per Lock.
	Holder string
	// Duration is how long the lease stays valid without renewal (DefaultDuration if zero).
	// It is renewed every Duration/3.
	Duration time.Duration
	Log      *slog.Logger

	mu   sync.Mutex
	lost map[string]*lossSignal // by release, for the locks this Locker took
}

// lossSignal is closed, with its error set, when a held lock is lost.
type lossSignal struct {
	ch  chan struct{}
	err error
}

// Lost returns a channel that is closed when the lock this Locker holds on release is lost:
// the lease was deleted or taken over by another run, or could not be renewed for longer
// than its duration (another run may then take it). LostErr says why. A run must stop
// changing anything at once.
func (l *Locker) Lost(release string) <-chan struct{} { return l.signal(release).ch }

// LostErr is why the lock on release was lost, or nil.
func (l *Locker) LostErr(release string) error {
	s := l.signal(release)
	select {
	case <-s.ch:
		return s.err
	default:
		return nil
	}
}

func (l *Locker) signal(release string) *lossSignal {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = map[string]*lossSignal{}
	}
	s, ok := l.lost[release]
	if !ok {
		s = &lossSignal{ch: make(chan struct{})}
		l.lost[release] = s
	}
	return s
}

// LeaseName is the name of a release's lease: identity-upgrade-<release>, made a valid
// DNS-1123 label (lower case, at most 63 characters; a long name is cut and ends in a hash of
// the release name so that two long names stay distinct).
func LeaseName(release string) string {
	var b strings.Builder
	b.WriteString("identity-upgrade-")
	dash := true
	for _, r := range strings.ToLower(release) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) <= 63 && name == "identity-upgrade-"+release {
		return name
	}
	// Sanitised or too long: a hash of the original keeps distinct releases distinct.
	sum := sha256.Sum256([]byte(release))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	if len(name) > 63-len(suffix) {
		name = strings.TrimRight(name[:63-len(suffix)], "-")
	}
	return name + suffix
}

func (l *Locker) duration() time.Duration {
	if l.Duration > 0 {
		return l.Duration
	}
	return DefaultDuration
}

func (l *Locker) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.New(slog.DiscardHandler)
}

func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// Lock takes the release's lease: it creates it, or takes over one whose holder stopped
// renewing it (expired). A lease held by another run, or one another run takes over at the
// same moment, fails with an error wrapping rollout.ErrLocked that names the holder. While
// held, the lease is renewed in the background until unlock is called, independently of ctx
// (a cancelled run still holds the release while it rolls back). unlock stops the renewal and
// deletes the lease, unless another run took it over meanwhile (then it reports that).
func (l *Locker) Lock(ctx context.Context, release string) (func(context.Context) error, error) {
	if l.Client == nil {
		return nil, errors.New("lock release: no Kubernetes client")
	}
	if l.Namespace == "" {
		return nil, errors.New("lock release: no namespace")
	}
	holder := l.Holder
	if holder == "" {
		holder = defaultHolder()
	}
	name := LeaseName(release)
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	seconds := int32((l.duration() + time.Second - 1) / time.Second)

	var held *coordinationv1.Lease
	// Create, or take over an expired lease. A lease deleted between our create and our read
	// sends us round again; a few rounds are plenty.
	for attempt := 0; held == nil; attempt++ {
		if attempt == 5 {
			return nil, fmt.Errorf("lock release %q: lease %s/%s keeps changing: %w", release, l.Namespace, name, rollout.ErrLocked)
		}
		now := metav1.NowMicro()
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Namespace:   l.Namespace,
				Labels:      map[string]string{ManagedByLabel: ManagedBy},
				Annotations: map[string]string{ReleaseAnnotation: release},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &holder,
				LeaseDurationSeconds: &seconds,
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}
		created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
		if err == nil {
			held = created
			break
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("lock release %q: create lease %s/%s: %w", release, l.Namespace, name, err)
		}
		existing, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("lock release %q: read lease %s/%s: %w", release, l.Namespace, name, err)
		}
		if !expired(existing, time.Now()) {
			return nil, l.lockedError(release, existing)
		}
		previous := holderOf(existing)
		take := existing.DeepCopy()
		take.Spec.HolderIdentity = &holder
		take.Spec.LeaseDurationSeconds = &seconds
		take.Spec.AcquireTime = &now
		take.Spec.RenewTime = &now
		transitions := int32(1)
		if existing.Spec.LeaseTransitions != nil {
			transitions = *existing.Spec.LeaseTransitions + 1
		}
		take.Spec.LeaseTransitions = &transitions
		if take.Annotations == nil {
			take.Annotations = map[string]string{}
		}
		take.Annotations[ReleaseAnnotation] = release
		// The update carries the resourceVersion we read: if another run took the lease
		// first, the API server refuses ours with a conflict.
		updated, err := leases.Update(ctx, take, metav1.UpdateOptions{})
		switch {
		case err == nil:
			held = updated
			l.log().Warn("took over an expired lock", "lease", name, "namespace", l.Namespace,
				"previous_holder", previous, "last_renewed", renewedAt(existing))
		case apierrors.IsConflict(err):
			winner, gerr := leases.Get(ctx, name, metav1.GetOptions{})
			if gerr != nil {
				return nil, fmt.Errorf("lock release %q: another run took over the expired lease %s/%s first: %w", release, l.Namespace, name, rollout.ErrLocked)
			}
			return nil, l.lockedError(release, winner)
		case apierrors.IsNotFound(err):
			continue // deleted meanwhile
		default:
			return nil, fmt.Errorf("lock release %q: take over expired lease %s/%s: %w", release, l.Namespace, name, err)
		}
	}
	l.log().Info("locked release", "release", release, "lease", name, "namespace", l.Namespace,
		"holder", holder, "duration", l.duration())

	h := &heldLease{
		locker:  l,
		release: release,
		holder:  holder,
		lease:   held,
		renewed: time.Now(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	l.mu.Lock()
	if l.lost != nil {
		delete(l.lost, release) // a fresh lock, not lost (yet)
	}
	l.mu.Unlock()
	go h.renew()
	return h.unlock, nil
}

// heldLease is one held lock: the lease as last written, renewed until unlock.
type heldLease struct {
	locker  *Locker
	release string
	holder  string

	stop chan struct{}
	done chan struct{}

	// Owned by the renewal goroutine until done is closed, then by unlock.
	lease   *coordinationv1.Lease
	renewed time.Time // when the lease was last written
	lost    error

	once sync.Once
	err  error
}

// renew writes a fresh renewTime every Duration/3. A failed renewal is retried at the next
// tick; a lease taken over by another run (possible only after ours expired) ends the
// renewal, and unlock reports it.
func (h *heldLease) renew() {
	defer close(h.done)
	l := h.locker
	interval := l.duration() / 3
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	// Every call ends early when unlock is called, and is bounded by the interval.
	stopped, cancelStopped := context.WithCancel(context.Background())
	defer cancelStopped()
	go func() {
		select {
		case <-h.stop:
			cancelStopped()
		case <-stopped.Done():
		}
	}()
	for {
		select {
		case <-h.stop:
			return
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(stopped, interval)
		err := h.renewOnce(ctx, leases)
		cancel()
		if err == nil {
			continue
		}
		if h.lost == nil && time.Since(h.renewed) > l.duration() {
			h.lost = fmt.Errorf("lease %s/%s could not be renewed for %s, longer than its duration (%s): another run may hold it now: %w",
				l.Namespace, h.lease.Name, time.Since(h.renewed).Round(time.Second), l.duration(), err)
		}
		if h.lost != nil {
			l.log().Error("lost the release lock", "lease", h.lease.Name, "namespace", l.Namespace, "err", h.lost)
			s := l.signal(h.release)
			s.err = h.lost
			close(s.ch)
			return
		}
		select {
		case <-h.stop:
			return
		default:
		}
		l.log().Warn("renew release lock", "lease", h.lease.Name, "namespace", l.Namespace, "err", err)
	}
}

func (h *heldLease) renewOnce(ctx context.Context, leases coordinationclient.LeaseInterface) error {
	next := h.lease.DeepCopy()
	now := metav1.NowMicro()
	next.Spec.RenewTime = &now
	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
	if err == nil {
		h.lease, h.renewed = updated, now.Time
		return nil
	}
	if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return err
	}
	// Someone else wrote the lease: still ours (e.g. a retried write that did land) or not?
	current, gerr := leases.Get(ctx, h.lease.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(gerr):
		h.lost = fmt.Errorf("lease %s/%s was deleted while this run held it", h.lease.Namespace, h.lease.Name)
		return h.lost
	case gerr != nil:
		return gerr
	case holderOf(current) != h.holder:
		h.lost = fmt.Errorf("lease %s/%s was taken over by %q at %s while this run held it",
			current.Namespace, current.Name, holderOf(current), acquiredAt(current))
		return h.lost
	}
	h.lease = current
	return err
}

// unlock stops the renewal and deletes the lease, on condition that it is still the lease we
// last wrote. Calling it again returns the first call's result.
func (h *heldLease) unlock(ctx context.Context) error {
	h.once.Do(func() {
		close(h.stop)
		<-h.done
		h.err = h.deleteLease(ctx)
	})
	return h.err
}

func (h *heldLease) deleteLease(ctx context.Context) error {
	l := h.locker
	name := h.lease.Name
	if h.lost != nil {
		return fmt.Errorf("unlock release %q: %w", h.release, h.lost)
	}
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	uid, rv := h.lease.UID, h.lease.ResourceVersion
	err := leases.Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		l.log().Info("unlocked release", "release", h.release, "lease", name, "namespace", l.Namespace)
		return nil
	case apierrors.IsConflict(err):
		current, gerr := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			return nil
		}
		if gerr == nil && holderOf(current) != h.holder {
			return fmt.Errorf("unlock release %q: lease %s/%s was taken over by %q at %s while this run held it; left in place",
				h.release, l.Namespace, name, holderOf(current), acquiredAt(current))
		}
		if gerr == nil {
			// Still ours, at a version we did not see (a renewal whose answer was lost).
			uid, rv := current.UID, current.ResourceVersion
			err = leases.Delete(ctx, name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
			})
			if err == nil || apierrors.IsNotFound(err) {
				return nil
			}
		}
		return fmt.Errorf("unlock release %q: delete lease %s/%s: %w", h.release, l.Namespace, name, err)
	default:
		return fmt.Errorf("unlock release %q: delete lease %s/%s (it expires by itself within %s): %w",
			h.release, l.Namespace, name, l.duration(), err)
	}
}

// lockedError says who holds the release since when, and how to clear a stale lock.
func (l *Locker) lockedError(release string, lease *coordinationv1.Lease) error {
	holder := holderOf(lease)
	if holder == "" {
		holder = "(unknown)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lease %s/%s is held by %q since %s", lease.Namespace, lease.Name, holder, acquiredAt(lease))
	if r := renewedAt(lease); r != "" {
		fmt.Fprintf(&b, ", last renewed %s", r)
	}
	b.WriteString("; if that run is gone, ")
	if d := leaseDuration(lease); d > 0 && lease.Spec.RenewTime != nil {
		fmt.Fprintf(&b, "the lease expires by itself at %s, or ", lease.Spec.RenewTime.Add(d).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "clear it with `kubectl delete lease %s -n %s`", lease.Name, lease.Namespace)
	return fmt.Errorf("lock release %q: %w: %s", release, rollout.ErrLocked, b.String())
}

// expired reports whether a lease's holder stopped renewing it (or released it without
// deleting it). A lease without a duration or renew time never expires by itself.
func expired(lease *coordinationv1.Lease, now time.Time) bool {
	if holderOf(lease) == "" {
		return true
	}
	d := leaseDuration(lease)
	last := lease.Spec.RenewTime
	if last == nil {
		last = lease.Spec.AcquireTime
	}
	if d <= 0 || last == nil {
		return false
	}
	return !last.Add(d).After(now)
}

func leaseDuration(lease *coordinationv1.Lease) time.Duration {
	if lease.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	return time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
}

func holderOf(lease *coordinationv1.Lease) string {
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

func acquiredAt(lease *coordinationv1.Lease) string {
	switch {
	case lease.Spec.AcquireTime != nil:
		return lease.Spec.AcquireTime.UTC().Format(time.RFC3339)
	default:
		return lease.CreationTimestamp.UTC().Format(time.RFC3339)
	}
}

func renewedAt(lease *coordinationv1.Lease) string {
	if lease.Spec.RenewTime == nil {
		return ""
	}
	return lease.Spec.RenewTime.UTC().Format(time.RFC3339)
}
