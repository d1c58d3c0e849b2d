package rollout

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Results of the subcommands that do not upgrade, as the action's result output names them.
const (
	BackedUp   Result = "backed-up"  // exit 0: backup stored the bundle in every store
	Restored   Result = "restored"   // exit 0: restore restored the bundle
	Incomplete Result = "incomplete" // exit 1: a backup not in every store, or a restore cut short
	// Failed is a backup or restore that failed for a reason outside its inputs (the way to
	// the database broke for every attempt, a lock another session held), having changed
	// nothing: exit 1. Refused is kept for what the inputs or the preflight decide.
	Failed Result = "failed"
)

// Headline is the report's first line: what happened, in one sentence.
func (r *Report) Headline() string {
	switch r.Result {
	case Upgraded:
		return fmt.Sprintf("Upgraded %s: revision %d → %d (%s → %s).", r.Release, r.PreviousRevision, r.Revision, r.FromChart, r.ToChart)
	case Rehearsed:
		reh := r.Rehearsal
		return fmt.Sprintf("Rehearsed the upgrade of %s on a clone (%s → %s): Keycloak migrated production's data in %s (%d changesets); the clone is gone.",
			r.Release, r.FromChart, r.ToChart, reh.Migration.Round(time.Second), reh.Applied())
	case RehearsalFailed:
		return fmt.Sprintf("The rehearsal of %s's upgrade (%s → %s) failed on a clone; production was not touched and the clone is gone.", r.Release, r.FromChart, r.ToChart)
	case Planned:
		return fmt.Sprintf("Planned: %s would be upgraded from revision %d (%s → %s); nothing was changed.", r.Release, r.PreviousRevision, r.FromChart, r.ToChart)
	case Noop:
		if r.NothingToRecover {
			return fmt.Sprintf("Nothing to recover: no run of %s was interrupted; nothing was changed.", r.Release)
		}
		return fmt.Sprintf("Nothing to do: %s at revision %d already renders the target and is ready.", r.Release, r.PreviousRevision)
	case RolledBack:
		if r.Interrupted != nil {
			db := "the database was unchanged"
			if r.DatabaseRestored {
				db = "the database was restored from that run's backup"
			}
			return fmt.Sprintf("Recovered an interrupted run (%s, stopped at %s): %s is back at revision %d's release; %s. Run again to upgrade.",
				r.Interrupted.RunID, r.Interrupted.Step, r.Release, r.PreviousRevision, db)
		}
		if r.UpgradedRevision == 0 {
			return fmt.Sprintf("Failed before the upgrade: %s was not upgraded and is still at revision %d.", r.Release, r.PreviousRevision)
		}
		db := "the database was unchanged"
		if r.DatabaseRestored {
			db = "the database was restored from the backup"
		}
		return fmt.Sprintf("Failed and rolled back: %s is back at revision %d's release (now revision %d); %s.", r.Release, r.PreviousRevision, r.Revision, db)
	case BackedUp:
		of := ""
		if r.Release != "" {
			of = " of " + r.Release
		}
		return fmt.Sprintf("Backed up the database%s to %s.", of, r.backupLocation())
	case Restored:
		return fmt.Sprintf("Restored the database from %s.", r.backupLocation())
	case Incomplete:
		if r.Backup != nil && r.Backup.SHA256 != "" {
			return fmt.Sprintf("Backup incomplete: the dump was taken, but only %d of the backup stores hold it.", len(r.Backup.Locations))
		}
		return "Restore incomplete: the database may be partly restored; run the restore again."
	case Failed:
		return "Failed, for a cause outside the inputs: nothing was changed (a backup stored no bundle, a restore committed nothing)."
	case Refused:
		if r.Release == "" {
			return "Refused: nothing was changed."
		}
		return fmt.Sprintf("Refused: %s was not changed.", r.Release)
	}
	return fmt.Sprintf("FAILED and NOT fully recovered: %s needs a person (state below).", r.Release)
}

// backupLocation is where the report's backup is, or "" when it has none.
func (r *Report) backupLocation() string {
	if r.Backup == nil {
		return ""
	}
	return r.Backup.Location()
}

// Failure is the report of a backup or restore that failed for a cause outside its inputs
// and changed nothing: exit 1.
func Failure(release, namespace string, started time.Time, cause error) *Report {
	return &Report{
		Result: Failed, Release: release, Namespace: namespace,
		Failure: cause, Started: started, Duration: time.Since(started),
	}
}

// Refusal is the report of a run refused before the upgrade started: invalid input, or a
// cluster, database or backup store that could not be set up. Nothing was changed: exit 2.
// release and namespace may be empty when they are not known (or not valid).
func Refusal(release, namespace string, started time.Time, cause error) *Report {
	return &Report{
		Result: Refused, Release: release, Namespace: namespace,
		Failure: cause, Started: started, Duration: time.Since(started),
	}
}

// State says what state a run that needs a person left things in: the release, the database,
// the steps of the recovery that did not complete, and the backup to return to. It is nil for
// every other result.
func (r *Report) State() []string {
	if r.Result != NeedsAttention {
		return nil
	}
	var s []string
	if f := r.Found; f != nil {
		// Read back, not inferred.
		for _, l := range []struct{ what, found string }{
			{"Release " + r.Release, f.Release}, {"Keycloak", f.Keycloak}, {"Resources", f.Resources}, {"Database", f.Database},
		} {
			if l.found != "" {
				s = append(s, l.what+": "+l.found+".")
			}
		}
		return append(s, r.handOver()...)
	}
	switch {
	case r.UpgradedRevision == 0:
		s = append(s, fmt.Sprintf("Release %s: not upgraded; still at revision %d%s.", r.Release, r.PreviousRevision, chartOf(r.FromChart)))
	case r.Revision == r.UpgradedRevision:
		s = append(s, fmt.Sprintf("Release %s: at revision %d, the upgrade's%s; not rolled back to revision %d.", r.Release, r.Revision, chartOf(r.ToChart), r.PreviousRevision))
	default:
		s = append(s, fmt.Sprintf("Release %s: rolled back to revision %d's release (now revision %d), but the recovery did not complete.", r.Release, r.PreviousRevision, r.Revision))
	}
	switch {
	case r.DatabaseRestored:
		s = append(s, "Database: restored from the backup.")
	case r.UpgradedRevision == 0:
		s = append(s, "Database: unchanged; nothing was upgraded.")
	case r.DatabaseDrift != "":
		s = append(s, "Database: not restored, as the upgraded version left it: "+r.DatabaseDrift+".")
	default:
		s = append(s, "Database: not restored, as the upgraded version left it.")
	}
	return append(s, r.handOver()...)
}

// handOver is what a person needs to go on: the steps that did not complete, the backup, and
// the command that finishes the way back.
func (r *Report) handOver() []string {
	var s []string
	var failed []string
	for _, st := range r.Timeline {
		if st.Err != nil && recoveryStep(st.Name) {
			failed = append(failed, st.Name)
		}
	}
	if len(failed) > 0 {
		line := "Did not complete: " + strings.Join(failed, ", ") + "."
		for _, f := range failed {
			if f == "scale up" {
				line += " The Keycloak workloads may still be scaled to 0."
				break
			}
		}
		s = append(s, line)
	}
	if r.Backup != nil && len(r.Backup.Locations) > 0 {
		loc := r.Backup.Locations[0]
		advise := r.Plan.Request.Advise.advise
		s = append(s, fmt.Sprintf("Backup taken before the upgrade: %s (sha256 %s); to put it back, with Keycloak scaled to 0, %s; %s.",
			loc, r.Backup.SHA256, advise(Fix{OptionCommand, "restore"}), advise(Fix{OptionRestoreFrom, loc})))
	}
	if r.PreviousRevision > 0 {
		// Never a bare helm command: helm's rollback runs the rollback hooks and meets the
		// immutable selector the way back handles.
		s = append(s, fmt.Sprintf("Once the cause is fixed, %s: it finishes the way back to revision %d from the run journal, with this run's backup.",
			r.Plan.Request.Advise.advise(Fix{OptionCommand, "recover"}), r.PreviousRevision))
	}
	return s
}

// recoveryStep reports whether a step of the timeline is one of the recovery's.
func recoveryStep(name string) bool {
	switch name {
	case "scale up", "scale down", "restore database", "rollback", "replace orphaned pods", "readiness after rollback", "verify database":
		return true
	}
	return false
}

// chartOf is " (chart)" for a known chart, else "".
func chartOf(chart string) string {
	if chart == "" {
		return ""
	}
	return " (" + chart + ")"
}

// WriteText writes the report for a person to read: headline, facts, failure, recovery, and
// the timeline of steps.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString(r.Headline() + "\n")
	fmt.Fprintf(&b, "  result: %s (exit %d) in %s\n", r.Result, r.ExitCode(), r.Duration.Round(100*time.Millisecond))
	if r.PreviousRevision > 0 {
		fmt.Fprintf(&b, "  release: %s in namespace %s, revision %d before, %d now", r.Release, r.Namespace, r.PreviousRevision, r.Revision)
		if r.UpgradedRevision > 0 {
			fmt.Fprintf(&b, " (the upgrade made revision %d)", r.UpgradedRevision)
		}
		b.WriteString("\n")
	}
	if r.FromChart != "" {
		fmt.Fprintf(&b, "  chart: %s → %s\n", r.FromChart, r.ToChart)
	}
	if bk := r.Backup; bk != nil {
		fmt.Fprintf(&b, "  backup: %s (%d bytes, sha256 %s)\n", bk.Location(), bk.Bytes, bk.SHA256)
		if bk.ArtifactID != 0 {
			fmt.Fprintf(&b, "  artifact: id %d", bk.ArtifactID)
			if bk.ArtifactURL != "" {
				fmt.Fprintf(&b, ", %s", bk.ArtifactURL)
			}
			b.WriteString("\n")
		}
	}
	if reh := r.Rehearsal; reh != nil {
		fmt.Fprintf(&b, "  rehearsal: %s\n", reh.Summary())
	}
	if r.Downtime > 0 {
		fmt.Fprintf(&b, "  downtime: Keycloak down %s (backup, upgrade, readiness)", r.Downtime.Round(time.Second))
		if reh := r.Rehearsal; reh != nil && reh.Passed {
			fmt.Fprintf(&b, "; the clone's migration predicted %s of it", reh.Migration.Round(time.Second))
		}
		b.WriteString("\n")
	}
	if c := r.Customizations; c != nil {
		fmt.Fprintf(&b, "  customizations: %s\n", c.Summary())
		for _, w := range c.Warnings {
			fmt.Fprintf(&b, "    not saved: %s\n", w)
		}
	}
	if c := r.ThemeCheck; c != nil {
		fmt.Fprintf(&b, "  theme check: %s\n", c)
	}
	if r.DatabaseDrift != "" {
		fmt.Fprintf(&b, "  database: %s", r.DatabaseDrift)
		if r.DatabaseRestored {
			b.WriteString(" → restored")
		}
		b.WriteString("\n")
	}
	if r.Failure != nil {
		fmt.Fprintf(&b, "Cause: %v\n", r.Failure)
	}
	if nr := r.NotReady; nr != nil && len(nr.Logs) > 0 {
		fmt.Fprintf(&b, "Last log lines of %s/%s:\n", nr.Pod, nr.Container)
		for _, l := range nr.Logs {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	if r.Recovery != nil {
		fmt.Fprintf(&b, "Recovery did not complete: %v\n", r.Recovery)
	}
	if state := r.State(); len(state) > 0 {
		b.WriteString("State now:\n")
		for _, l := range state {
			fmt.Fprintf(&b, "  - %s\n", l)
		}
	}
	if len(r.Timeline) > 0 {
		b.WriteString("Timeline:\n")
		for _, s := range r.Timeline {
			status := "ok"
			if s.Err != nil {
				status = "FAILED"
			}
			fmt.Fprintf(&b, "  %-26s %8s  %-6s %s\n", s.Name, s.Duration.Round(10*time.Millisecond), status, s.Note)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
