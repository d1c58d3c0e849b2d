package rollout

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Headline is the report's first line: what happened, in one sentence.
func (r *Report) Headline() string {
	switch r.Result {
	case Upgraded:
		return fmt.Sprintf("Upgraded %s: revision %d → %d (%s → %s).", r.Release, r.PreviousRevision, r.Revision, r.FromChart, r.ToChart)
	case Noop:
		if r.DryRun && !r.Plan.Noop {
			return fmt.Sprintf("Dry run: %s would be upgraded from revision %d (%s → %s); nothing was changed.", r.Release, r.PreviousRevision, r.FromChart, r.ToChart)
		}
		return fmt.Sprintf("Nothing to do: %s at revision %d already renders the target and is ready.", r.Release, r.PreviousRevision)
	case RolledBack:
		if r.UpgradedRevision == 0 {
			return fmt.Sprintf("Failed before the upgrade: %s was not upgraded and is still at revision %d.", r.Release, r.PreviousRevision)
		}
		db := "the database was unchanged"
		if r.DatabaseRestored {
			db = "the database was restored from the backup"
		}
		return fmt.Sprintf("Failed and rolled back: %s is back at revision %d's release (now revision %d); %s.", r.Release, r.PreviousRevision, r.Revision, db)
	}
	if r.ExitCode == ExitRefused {
		return fmt.Sprintf("Refused: %s was not changed.", r.Release)
	}
	return fmt.Sprintf("FAILED and NOT fully recovered: %s needs a person (state below).", r.Release)
}

// WriteText writes the report for a person to read: headline, facts, failure, recovery, and
// the timeline of steps.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString(r.Headline() + "\n")
	fmt.Fprintf(&b, "  result: %s (exit %d) in %s\n", r.Result, r.ExitCode, r.Duration.Round(100*time.Millisecond))
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
