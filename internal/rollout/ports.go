package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors of the upgrade pipeline.
var (
	// ErrNotReady is wrapped by every readiness failure (see NotReady).
	ErrNotReady = errors.New("release not ready")
	// ErrLocked is returned by a Locker when another run holds the release.
	ErrLocked = errors.New("another identity-upgrade run holds the release")
	// ErrConflict is wrapped by a Releases operation that failed because an object changed
	// between its read and its write (an HTTP 409, "the object has been modified"), for
	// example a controller writing a status: trying again may succeed.
	ErrConflict = errors.New("an object changed while it was being written")
)

// Releaser is the Helm release: what exists, what an upgrade would make of it, and the
// operations that change it. Implemented by helmrelease.
type Releaser interface {
	ReleaseReader
	// Unlock marks a revision left pending-* as failed, so that helm accepts operations on the
	// release again (what Flux's helm-controller does). It changes nothing in the cluster.
	Unlock(ctx context.Context, rel Release) error
	// MarkFailed records revision rel.Revision as failed, with reason in its description (helm
	// history's), as helm upgrade --atomic does with an upgrade it rolls back: the history then
	// tells the failed upgrade from a superseded one. It changes nothing in the cluster.
	MarkFailed(ctx context.Context, rel Release, reason string) error
	// Deployed returns the newest revision whose status is deployed: the one running when the
	// latest revision failed or was unlocked.
	Deployed(ctx context.Context, name string) (Release, error)
	// Values returns the user-supplied values of a revision as YAML.
	Values(ctx context.Context, name string, revision int) ([]byte, error)
	// Upgrade applies the target chart without waiting for readiness. On an error after helm
	// recorded a new revision, the returned Release carries that revision (Revision > 0).
	Upgrade(ctx context.Context, name string, timeout time.Duration) (Release, error)
	// Rollback returns the release to revision `to` (a new revision is recorded), without
	// waiting for readiness.
	Rollback(ctx context.Context, name string, to int, opts RollbackOptions) (Release, error)
	// OrphanStatefulSets deletes the named StatefulSets with propagation Orphan (their pods and
	// claims stay), waiting until they are gone; missing ones are ignored.
	OrphanStatefulSets(ctx context.Context, names []string) error
	// ReplaceOrphanedPods deletes the pods named <statefulset>-<ordinal> of each named
	// StatefulSet that its (new) selector does not match, so that the StatefulSet re-creates
	// them; volumes stay. It returns the pods it deleted.
	ReplaceOrphanedPods(ctx context.Context, names []string) ([]string, error)
	// Revision reads one revision of the release: the recovery of an interrupted run needs the
	// revision that run recorded, which need not be the newest deployed one any more.
	Revision(ctx context.Context, name string, revision int) (Release, error)
}

// RollbackOptions are helm's rollback switches.
type RollbackOptions struct {
	// DisableHooks skips the target revision's pre-/post-rollback hooks.
	DisableHooks bool
	// Force replaces resources that cannot be patched (helm --force).
	Force bool
	// CleanupOnFail deletes resources created by the failed rollback.
	CleanupOnFail bool
	// Timeout bounds helm's own work (hooks, deletions); readiness is waited for separately.
	Timeout time.Duration
}

// WaitRequest says what to wait for: every resource of a manifest, in a namespace.
type WaitRequest struct {
	Namespace string
	Manifest  string
	// Timeout bounds the whole wait (stability window included).
	Timeout time.Duration
	// StabilityWindow is how long every resource must stay ready, with no decisive pod
	// signal, after all first became ready.
	StabilityWindow time.Duration
	// ProbeURL, when set, must answer 2xx once the resources are ready and through the window.
	ProbeURL string
	// LogLines is how many lines of a failing container's log to fetch (0: a default).
	LogLines int
}

// Waiter waits until a release is ready, failing fast on decisive signals. Implemented by
// readiness. A failure is a *NotReady (errors.Is(err, ErrNotReady)).
type Waiter interface {
	Wait(ctx context.Context, req WaitRequest) error
}

// NotReady is why a release is not ready: the first decisive signal, or the timeout.
type NotReady struct {
	// Resource is "Kind/name" of the workload (or other resource) that failed.
	Resource string
	// Pod and Container name the failing pod and container, when a pod signal decided.
	Pod       string
	Container string
	// Reason is the signal: CrashLoopBackOff, ImagePullBackOff, ErrImagePull,
	// CreateContainerConfigError, Unschedulable, Terminated, RestartCountRising, ProbeFailed,
	// Timeout, ...
	Reason  string
	Message string
	// InWindow is true when the signal came during the stability window, after all resources
	// had been ready.
	InWindow bool
	// Logs are the last lines of the failing container's log, fetched before any rollback.
	Logs []string
	// After is how long after the start of the wait the failure was decided.
	After time.Duration
}

func (e *NotReady) Error() string {
	var b strings.Builder
	b.WriteString("not ready: ")
	if e.Pod != "" {
		fmt.Fprintf(&b, "pod %s", e.Pod)
		if e.Container != "" {
			fmt.Fprintf(&b, " container %s", e.Container)
		}
		if e.Resource != "" {
			fmt.Fprintf(&b, " (%s)", e.Resource)
		}
	} else {
		b.WriteString(e.Resource)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.InWindow {
		b.WriteString(" (during the stability window, after all resources were ready)")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotReady) true for every NotReady.
func (e *NotReady) Is(target error) bool { return target == ErrNotReady }

// Locker takes a cluster-wide lock on a release so that two runs never overlap.
// Implemented by kubelock (a coordination.k8s.io Lease).
type Locker interface {
	// Lock takes the lock or fails with an error wrapping ErrLocked naming the holder. The
	// returned function releases it; it is safe to call on a cancelled parent context's
	// successor.
	Lock(ctx context.Context, release string) (unlock func(context.Context) error, err error)
	// Lost is closed when the lock on the release, once taken, is lost; LostErr says why.
	Lost(release string) <-chan struct{}
	LostErr(release string) error
}

// Scaled is a workload the procedure scaled, and the replicas it had.
type Scaled struct {
	Kind     string // StatefulSet or Deployment
	Name     string
	Replicas int32
}

// Workloads stops and starts the Keycloak workloads of a release (the vendor's downtime).
// Implemented by keycloak.
type Workloads interface {
	// ScaleDown scales the Keycloak workloads found in the manifest to zero and waits until
	// their pods are gone. It returns what it scaled (with the replicas each had).
	ScaleDown(ctx context.Context, namespace, manifest string) ([]Scaled, error)
	// ScaleUp gives each workload its recorded replicas back.
	ScaleUp(ctx context.Context, namespace string, scaled []Scaled) error
	// Replicas reads the replicas of the Keycloak workloads found in the manifest without
	// changing them: the journal records them before the quiesce scales anything.
	Replicas(ctx context.Context, namespace, manifest string) ([]Scaled, error)
}

// Databaser is the Keycloak database: its facts, a backup of it, and the way back to it.
// Implemented by pgbackup.
type Databaser interface {
	DatabaseInspector
	// Backup takes a complete, verified backup and stores it. The returned Backup keeps a
	// local working copy the procedure can restore from whatever the remote stores hold.
	Backup(ctx context.Context, req BackupRequest) (Backup, error)
	// Drift says how the database now differs from the backup (schema state, tables, row
	// counts); "" means no difference was found.
	Drift(ctx context.Context, b Backup) (string, error)
	// Restore puts the backup's content back and says how, for the report (the client tools,
	// what it left out), or "".
	Restore(ctx context.Context, b Backup) (string, error)
	// Verify checks the database content against the backup's manifest.
	Verify(ctx context.Context, b Backup) error
	// Reopen finds a backup again from what a journal kept of it: a working copy left on this
	// machine, else a copy in one of its stores. The recovery of an interrupted run restores
	// from it.
	Reopen(ctx context.Context, b JournalBackup) (Backup, error)
	// RemoveStale removes what earlier runs of the release left on this machine (their working
	// copies: plaintext dumps, the release's manifest with its Secrets), and says what.
	RemoveStale(ctx context.Context) ([]string, error)
}

// BackupRequest names the backup and the release revision it belongs to.
type BackupRequest struct {
	Name string
	// Release is the recorded revision R; its manifest and Values go into the bundle, the
	// vendor's "back up your customisations".
	Release Release
	Values  []byte
	// WorkingCopyOnly keeps the backup on this machine: a rehearsal's, which no store needs.
	WorkingCopyOnly bool
	// Customizations, when saved, go into the bundle as its customizations part.
	Customizations *Customizations
}

// Backup is a backup the procedure took.
type Backup struct {
	Name string
	// Dir is the local working copy (plaintext; removed when the run ends).
	Dir string
	// Locations are where the stores keep it; the first is the one reported.
	Locations []string
	SHA256    string
	Bytes     int64
	Schema    SchemaState
	Tables    int
	Rows      int64
	// ArtifactID and ArtifactURL are the GitHub artifact the artifact store made of it (its id
	// and its page on the workflow run), when it is in that store; 0 and "" otherwise.
	ArtifactID  int64
	ArtifactURL string
	// Encrypted is true when the stores hold every file of it encrypted; Secrets says what
	// in it carries secrets ("the release's values"), which a plaintext bundle shows to
	// whoever can read its stores.
	Encrypted bool
	Secrets   []string
}

// Location is the first store location, or the working copy when there is no store.
func (b Backup) Location() string {
	if len(b.Locations) > 0 {
		return b.Locations[0]
	}
	return b.Dir
}

// Sessions ends the users' sessions before the downtime (the vendor's first step).
// Implemented by keycloak (admin REST API).
type Sessions interface {
	// LogoutAll logs out every session of the configured realms and returns how many realms
	// it logged out.
	LogoutAll(ctx context.Context) (realms int, err error)
}

// TxObjectStore clears Keycloak's transaction object store in the running pods (the vendor's
// second step). Implemented by keycloak (pod exec).
type TxObjectStore interface {
	// Clear deletes the store's directory in every running pod of the Keycloak workloads found
	// in the manifest, and returns the pods it cleared.
	Clear(ctx context.Context, namespace, manifest string) (pods []string, err error)
}
