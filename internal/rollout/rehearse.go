package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The rehearsal: the upgrade tried on a clone of production, in a scratch namespace of the
// same cluster, before any downtime. A consistent backup of the database (Keycloak keeps
// serving), the target chart installed there under the release's name with the release's
// values, the backup restored into the clone's database, Keycloak started on it: its
// migration runs on production's data, and the run learns whether it works and how long it
// takes. Everything it made goes when it ends, also when it fails or is cancelled; a run that
// dies leaves the namespace in its journal for the next run or recover.

// ErrRehearsalFailed wraps the cause of a rehearsal that did not pass.
var ErrRehearsalFailed = errors.New("the rehearsal on a clone failed")

// ErrScratchTaken is returned by CreateScratch for a namespace that exists and is not a
// rehearsal's of the release.
var ErrScratchTaken = errors.New("the rehearsal namespace exists and is not a rehearsal's")

// RehearseRequest says where and how to rehearse.
type RehearseRequest struct {
	// Namespace is the scratch namespace (default <namespace>-rehearsal).
	Namespace string
}

// Rehearsal is what a rehearsal found.
type Rehearsal struct {
	Namespace string
	Passed    bool
	// Failure is why it did not pass; NotReady is set when readiness decided it.
	Failure  error
	NotReady *NotReady
	// Migration is how long Keycloak took from its start on the clone to Ready: its schema
	// migration on production's data, the downtime to expect.
	Migration time.Duration
	// ChangesetsBefore and ChangesetsAfter are the rows of databasechangelog in the clone
	// before and after Keycloak started: the Liquibase changesets the migration applied.
	ChangesetsBefore, ChangesetsAfter int64
	// Checked says what the checks after readiness reached (realms' discovery, admin API).
	Checked string
	// Removed is false when the clone could not be removed; the journal keeps it then.
	Removed bool
}

// Summary says in a line what the rehearsal found.
func (r Rehearsal) Summary() string {
	var b strings.Builder
	if r.Passed {
		b.WriteString("passed")
	} else {
		b.WriteString("FAILED")
	}
	fmt.Fprintf(&b, " on a clone in namespace %s", r.Namespace)
	if r.Migration > 0 {
		fmt.Fprintf(&b, "; Keycloak's start to Ready (its migration, the downtime to expect) %s", r.Migration.Round(time.Second))
	}
	if r.ChangesetsAfter > 0 {
		fmt.Fprintf(&b, "; %d changesets applied (%d → %d)", r.Applied(), r.ChangesetsBefore, r.ChangesetsAfter)
	}
	if r.Checked != "" {
		b.WriteString("; " + r.Checked)
	}
	if !r.Removed {
		b.WriteString("; the clone was NOT removed")
	}
	return b.String()
}

// Applied is the number of changesets the migration applied on the clone.
func (r Rehearsal) Applied() int64 { return r.ChangesetsAfter - r.ChangesetsBefore }

// Cloner makes, and takes away, the rehearsal's clone of the release.
type Cloner interface {
	// CreateScratch creates the namespace, labelled as this run's rehearsal of the release. A
	// namespace that exists is taken only when it is labelled as a rehearsal of the release
	// (a dead run's, which is emptied first); any other is refused with ErrScratchTaken.
	CreateScratch(ctx context.Context, namespace, runID string) error
	// InstallClone installs the target chart there under the release's name: the release's
	// values as the upgrade would use them, the ingress off, one Keycloak replica held at 0,
	// fresh claims in place of the existing claims production mounts.
	InstallClone(ctx context.Context, namespace string) (Release, error)
	// CloneDatabase is the clone's database, reached as production's is (through the API
	// server in the scratch namespace, or the rehearsal database the user gave).
	CloneDatabase(ctx context.Context, namespace string) (CloneDatabase, error)
	// RemoveScratch uninstalls the clone and deletes its claims and the namespace, waiting
	// until the namespace is gone. A namespace that does not exist is not an error.
	RemoveScratch(ctx context.Context, namespace string) error
}

// CloneDatabase is the database of a clone.
type CloneDatabase interface {
	DatabaseInspector
	// Restore puts the backup's content in it.
	Restore(ctx context.Context, b Backup) (string, error)
	// Realms lists the realms the database holds.
	Realms(ctx context.Context) ([]string, error)
	// Close ends what reaching it needed (a port-forward).
	Close() error
}

// Prober checks a running Keycloak as its users reach it: every realm's OIDC discovery
// document answers, and the admin API does. It says what it checked.
type Prober interface {
	Probe(ctx context.Context, namespace, manifest string, realms []string) (string, error)
}

// rehearse tries the upgrade on a clone and removes the clone. Production is not changed:
// no quiesce, a backup kept on this machine only. The journal records the namespace before
// anything is made there, and forgets it once it is gone.
func (r *run) rehearse(ctx context.Context) *Rehearsal {
	ns := r.req.Rehearse.Namespace
	reh := &Rehearsal{Namespace: ns}
	r.rep.Rehearsal = reh
	fail := func(err error) *Rehearsal {
		reh.Failure = fmt.Errorf("%w: %w", ErrRehearsalFailed, err)
		if nr, ok := errors.AsType[*NotReady](err); ok {
			reh.NotReady = nr
		}
		return reh
	}
	defer func() {
		// On a fresh bounded context: the clone goes also when the run was cancelled.
		ctx, cancel := r.recoveryContext(ctx)
		defer cancel()
		if err := r.step(ctx, "rehearsal: remove the clone", func(ctx context.Context) (string, error) {
			if err := r.p.Cloner.RemoveScratch(ctx, ns); err != nil {
				return "", err
			}
			return "namespace " + ns + " deleted", nil
		}); err != nil {
			r.log.Warn("the clone was not removed: the run journal keeps it for the next run or recover", "namespace", ns, "err", err)
			if reh.Failure == nil {
				reh.Failure = fmt.Errorf("%w: remove the clone: %w", ErrRehearsalFailed, err)
			}
			return
		}
		reh.Removed = true
		if err := r.journal(ctx, r.jr.Step, func(j *Journal) { j.Scratch = "" }); err != nil {
			r.log.Warn("the run journal", "err", err)
		}
	}()

	var backup Backup
	if err := r.step(ctx, "rehearsal: backup", func(ctx context.Context) (string, error) {
		cur := r.rep.Plan.Current
		values, err := r.p.Releases.Values(ctx, r.req.Release, cur.Revision)
		if err != nil {
			return "", err
		}
		name := r.req.BackupName
		if name != "" {
			name += "-rehearsal" // the upgrade's own backup keeps the name given
		}
		backup, err = r.p.Database.Backup(ctx, BackupRequest{Name: name, Release: cur, Values: values, WorkingCopyOnly: true})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("a consistent snapshot, Keycloak serving (%d bytes)", backup.Bytes), nil
	}); err != nil {
		return fail(err)
	}
	var clone Release
	if err := r.step(ctx, "rehearsal: install the clone", func(ctx context.Context) (string, error) {
		if err := r.p.Cloner.CreateScratch(ctx, ns, r.req.RunID); err != nil {
			return "", err
		}
		var err error
		if clone, err = r.p.Cloner.InstallClone(ctx, ns); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s in namespace %s, Keycloak at 0", clone.Chart(), ns), nil
	}); err != nil {
		return fail(err)
	}
	db, err := r.p.Cloner.CloneDatabase(ctx, ns)
	if err != nil {
		return fail(fmt.Errorf("reach the clone's database: %w", err))
	}
	defer db.Close()
	var realms []string
	if err := r.step(ctx, "rehearsal: restore", func(ctx context.Context) (string, error) {
		how, err := db.Restore(ctx, backup)
		if err != nil {
			return "", err
		}
		facts, err := db.Inspect(ctx)
		if err != nil {
			return "", err
		}
		reh.ChangesetsBefore = facts.Schema.ChangelogRows
		if realms, err = db.Realms(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s; %d changesets, realms %s", how, reh.ChangesetsBefore, strings.Join(realms, ", ")), nil
	}); err != nil {
		return fail(err)
	}

	// Keycloak starts on the clone and migrates it; the time to Ready is the migration's.
	start := r.p.now()
	if err := r.step(ctx, "rehearsal: start Keycloak", func(ctx context.Context) (string, error) {
		scaled, err := r.p.Workloads.Replicas(ctx, ns, clone.Manifest)
		if err != nil {
			return "", err
		}
		for i := range scaled {
			scaled[i].Replicas = 1
		}
		return fmt.Sprintf("%v", scaled), r.p.Workloads.ScaleUp(ctx, ns, scaled)
	}); err != nil {
		return fail(err)
	}
	if err := r.step(ctx, "rehearsal: readiness", func(ctx context.Context) (string, error) {
		// First Ready ends the migration; the stability window then catches a Keycloak that
		// migrated and crashes.
		if err := r.p.Waiter.Wait(ctx, WaitRequest{Namespace: ns, Manifest: clone.Manifest, Timeout: r.req.Timeout}); err != nil {
			return "", err
		}
		reh.Migration = r.p.now().Sub(start)
		return fmt.Sprintf("ready after %s", reh.Migration.Round(time.Second)), r.p.Waiter.Wait(ctx, WaitRequest{
			Namespace: ns, Manifest: clone.Manifest, Timeout: r.req.StabilityWindow + time.Minute, StabilityWindow: r.req.StabilityWindow})
	}); err != nil {
		return fail(err)
	}
	if err := r.step(ctx, "rehearsal: checks", func(ctx context.Context) (string, error) {
		facts, err := db.Inspect(ctx)
		if err != nil {
			return "", err
		}
		reh.ChangesetsAfter = facts.Schema.ChangelogRows
		if r.p.Prober == nil {
			return fmt.Sprintf("%d changesets applied; no HTTP checks configured", reh.Applied()), nil
		}
		checked, err := r.p.Prober.Probe(ctx, ns, clone.Manifest, realms)
		switch {
		case !errors.Is(err, ErrMissingTheme):
		case r.req.MissingTheme == MissingThemeWarn:
			r.log.Warn("the clone's Keycloak lacks a theme a realm names (missing-theme: warn)", "err", err)
			checked, err = checked+" (missing-theme: warn)", nil
		default:
			err = fmt.Errorf("%w; bring the themes to the new version (the target's values or image), or %s to upgrade without them",
				err, r.req.Advise.advise(Fix{OptionMissingTheme, string(MissingThemeWarn)}))
		}
		reh.Checked = checked
		return fmt.Sprintf("%d changesets applied; %s", reh.Applied(), checked), err
	}); err != nil {
		return fail(err)
	}
	reh.Passed = true
	return reh
}

// rehearsalFirst runs the rehearsal a run asked for before its upgrade: the journal records
// the scratch namespace first. It returns nil when the rehearsal passed and its clone is gone.
func (r *run) rehearsalFirst(ctx context.Context) error {
	if err := r.journal(ctx, StepRehearsing, func(j *Journal) { j.Scratch = r.req.Rehearse.Namespace }); err != nil {
		return err
	}
	reh := r.rehearse(ctx)
	switch {
	case reh.Failure != nil:
		return reh.Failure
	case !reh.Removed:
		return fmt.Errorf("%w: the clone in namespace %s was not removed", ErrRehearsalFailed, reh.Namespace)
	}
	r.log.Info("the rehearsal passed", "migration", reh.Migration.Round(time.Second), "changesets", reh.Applied())
	r.rep.Plan.PredictedDowntime = reh.Migration
	r.log.Info("plan: the downtime to expect", "at-least", reh.Migration.Round(time.Second), "from", "the clone's migration")
	return nil
}

// removeScratch deletes a rehearsal's clone that a run left: its journal names the namespace.
type removeScratch struct{}

func (removeScratch) name() string       { return "remove the rehearsal's clone" }
func (removeScratch) needed(r *run) bool { return r.jr.Scratch != "" && r.p.Cloner != nil }
func (removeScratch) evenIfBlocked() bool {
	return true
}
func (removeScratch) do(ctx context.Context, r *run) (string, error) {
	ns := r.jr.Scratch
	if err := r.p.Cloner.RemoveScratch(ctx, ns); err != nil {
		return "", err
	}
	r.jr.Scratch = ""
	return "namespace " + ns + " deleted", nil
}

// rehearsalEnded ends a run at its rehearsal: the rehearsal failed (err), or passed and the
// run only rehearses. A clone that could not be removed stays in the open journal.
func (r *run) rehearsalEnded(ctx context.Context, err error) *Report {
	reh := r.rep.Rehearsal
	if reh != nil && !reh.Removed {
		r.rep.Failure = err
		r.rep.Result = NeedsAttention
		r.rep.Recovery = fmt.Errorf("the clone in namespace %s was not removed: the next run, or recover, removes it", reh.Namespace)
		return r.rep
	}
	outcome := "rehearsed on a clone: passed"
	if err != nil {
		outcome = fmt.Sprintf("rehearsed on a clone: failed (%v); production untouched", err)
	}
	if jerr := r.journal(context.WithoutCancel(ctx), StepClosed, func(j *Journal) { j.Outcome = outcome }); jerr != nil {
		r.log.Warn("the run journal", "err", jerr)
	}
	switch {
	case err == nil:
		r.rep.Result = Rehearsed
	case r.req.RehearseOnly:
		r.rep.Result, r.rep.Failure = RehearsalFailed, err
	default:
		// The upgrade would fail as its clone did: refused, production untouched.
		r.rep.Result, r.rep.Failure = Refused, err
	}
	return r.rep
}
