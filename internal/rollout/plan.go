package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors the preflight refuses with; callers branch on them with errors.Is.
var (
	ErrReleasePending  = errors.New("release has an operation in progress")
	ErrImmutableChange = errors.New("upgrade changes immutable fields")
	ErrPgDumpTooOld    = errors.New("pg_dump is older than the database server")
	ErrBrokenNoop      = errors.New("the release already renders the target but is not ready")
)

// ReleaseReader is the read-only side of the Helm release: what exists and what an upgrade
// would make of it.
type ReleaseReader interface {
	// Current returns the latest revision of the release, whatever its status.
	Current(ctx context.Context, name string) (Release, error)
	// Render returns the revision the upgrade would create, without changing anything.
	Render(ctx context.Context, name string) (Release, error)
	// Diff lists the resources that differ between two revisions' manifests.
	Diff(current, target Release) ([]Change, error)
	// Deployed returns the newest revision whose status is deployed: the one running when the
	// latest revision failed or was unlocked.
	Deployed(ctx context.Context, name string) (Release, error)
}

// DatabaseInspector reads the database facts the preflight records.
type DatabaseInspector interface {
	Inspect(ctx context.Context) (Database, error)
}

// PlanRequest is the part of the configuration the preflight needs.
type PlanRequest struct {
	Release              string
	Namespace            string
	RecreateStatefulSets RecreateStatefulSets
	RollbackHooks        RollbackHooks
	// UnlockPending allows continuing from a release left pending-*.
	UnlockPending bool
	// MapRemovedAPIs, ConvertRemovedAPIs and MigrateValues allow what fixes the vendor's older
	// charts on a current cluster: the stored manifest mapped to served APIs, the render
	// converted, the values moved (see findings).
	MapRemovedAPIs     bool
	ConvertRemovedAPIs bool
	MigrateValues      bool
	// Advise says how a person applies the fix a refusal names, in their terms.
	Advise Advisor
}

// Plan is the outcome of the preflight: the state found, what the upgrade would change, and
// the reasons it would be refused, if any.
type Plan struct {
	Request PlanRequest
	// Current is the revision to return to on failure, the one the plan is made against:
	// the latest revision when it is deployed, else the newest deployed one (what helm
	// upgrades from too). Latest is the latest revision when it is not Current (failed,
	// pending, superseded by a rollback...), else zero.
	Current  Release
	Latest   Release
	Target   Release
	Changes  []Change
	Database Database
	// SkippedRollbackHooks are the current revision's rollback hooks that a rollback to it would
	// not run (they would restore a stale in-cluster backup; the procedure restores its own).
	SkippedRollbackHooks []Hook
	// Refusals are the reasons the upgrade would not start; each wraps a sentinel error.
	Refusals []error
	// Noop: Current is the latest revision, renders the target, and its workloads were ready
	// when the plan was made: there is nothing to do.
	Noop bool
	// Warnings are what the upgrade would do that a person may not expect: a downgrade, values
	// reused under keys the target chart does not read, a theme the target would not have.
	Warnings []string
	// Themes are the themes the realms name and those the target would not have (PlanThemes);
	// nil when not asked.
	Themes *ThemePlan
	// PredictedDowntime is how long Keycloak took to migrate production's data on a clone, set
	// once a rehearsal passed (rehearse-first): the least downtime to expect. Zero without one.
	PredictedDowntime time.Duration
}

// Refused reports whether the preflight would refuse the upgrade.
func (p Plan) Refused() bool { return len(p.Refusals) > 0 }

// Result is what a plan, or a dry run, ends with: refused, nothing to do, or planned (the
// upgrade would start).
func (p Plan) Result() Result {
	switch {
	case p.Refused():
		return Refused
	case p.Noop:
		return Noop
	}
	return Planned
}

// readyNow is the readiness pass that tells "nothing to do" from "renders the target but
// broken" (and an interrupted run that had passed readiness from one that broke since): a
// short wait with a short stability window, so a crash-looping pod is seen.
func readyNow(ctx context.Context, w Waiter, namespace, manifest string) error {
	return w.Wait(ctx, WaitRequest{Namespace: namespace, Manifest: manifest, Timeout: time.Minute, StabilityWindow: 5 * time.Second})
}

// MakePlan is the one planning function, used by plan, by a dry run and by the run itself, so
// the three agree. It first decides the revision to return to (Current: the latest revision
// when deployed, else the newest deployed one), then computes everything against it: the
// target's changes, the refusals for immutable fields, the rollback hooks skipped, and whether
// there is nothing to do (the latest revision is Current, renders the target, and is ready now;
// ready may be nil when no readiness pass is possible, and then it is never nothing to do). An
// error means a fact could not be read (cluster or database unreachable, release missing);
// refusals are collected in the plan.
func MakePlan(ctx context.Context, rel ReleaseReader, db DatabaseInspector, ready Waiter, req PlanRequest) (Plan, error) {
	p := Plan{Request: req}
	latest, err := rel.Current(ctx, req.Release)
	if err != nil {
		return p, err
	}
	p.Current = latest
	if latest.Pending() && !req.UnlockPending {
		p.Refusals = append(p.Refusals, fmt.Errorf("%w: release %q is %s at revision %d (a killed run leaves it so, and helm refuses every later operation); "+
			"%s to mark that revision failed and continue, as Flux does",
			ErrReleasePending, req.Release, latest.Status, latest.Revision, req.Advise.advise(Fix{OptionUnlockPending, "true"})))
	} else {
		if latest.Status != "deployed" {
			// The revision to return to must be one that ran, never a failed or unlocked one.
			p.Latest = latest
			if p.Current, err = rel.Deployed(ctx, req.Release); err != nil {
				return p, fmt.Errorf("the latest revision %d of %q is %s, and no deployed revision to return to was found: %w",
					latest.Revision, req.Release, latest.Status, err)
			}
		}
		p.Target, err = rel.Render(ctx, req.Release)
		if err != nil {
			return p, err
		}
		p.Changes, err = rel.Diff(p.Current, p.Target)
		if err != nil {
			return p, err
		}
		if req.RecreateStatefulSets != RecreateOrphan {
			for _, c := range p.Changes {
				if len(c.Immutable) > 0 {
					p.Refusals = append(p.Refusals, fmt.Errorf("%w: %s changes %s, which the API server refuses to update: a plain helm upgrade "+
						"would fail after applying part of the release; %s to re-create it (its pods' volumes are kept)",
						ErrImmutableChange, c.Resource(), strings.Join(c.Immutable, ", "), req.Advise.advise(Fix{OptionRecreateStatefulSets, string(RecreateOrphan)})))
				}
			}
		}
		p.findings(req)
		if older(p.Target.AppVersion, p.Current.AppVersion) {
			p.Warnings = append(p.Warnings, fmt.Sprintf("downgrade: the target runs app %s, older than the current %s; "+
				"Keycloak does not migrate a schema back, so an older version may not start on this database", p.Target.AppVersion, p.Current.AppVersion))
		}
		if len(p.Target.UnreadValues) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("values the release would reuse that chart %s has no key for, so they would be dropped: %s; "+
				"give them under the keys the target chart reads", p.Target.Chart(), strings.Join(p.Target.UnreadValues, ", ")))
		}
	}
	p.SkippedRollbackHooks = skippedRollbackHooks(p.Current, req)
	p.Database, err = db.Inspect(ctx)
	if err != nil {
		return p, err
	}
	if p.Database.ClientProblem != "" {
		p.Refusals = append(p.Refusals, fmt.Errorf("%w: %s", ErrPgDumpTooOld, p.Database.ClientProblem))
	} else if p.Database.PgDumpMajor < p.Database.ServerMajor {
		p.Refusals = append(p.Refusals, fmt.Errorf("%w: pg_dump %s cannot dump a PostgreSQL %s server; install pg_dump %d or newer",
			ErrPgDumpTooOld, p.Database.PgDumpVersion, p.Database.ServerVersion, p.Database.ServerMajor))
	}
	if !p.Refused() && p.Latest.Revision == 0 && len(p.Changes) == 0 && p.Current.Chart() == p.Target.Chart() && ready != nil {
		if err := readyNow(ctx, ready, req.Namespace, p.Current.Manifest); err != nil {
			if ctx.Err() != nil {
				return p, err
			}
			p.Refusals = append(p.Refusals, fmt.Errorf("%w: revision %d (chart %s) is deployed and renders the target, but %v; "+
				"an upgrade to the same manifest would change nothing. Fix the cause, or upgrade to the chart version of a revision that worked, then run again",
				ErrBrokenNoop, p.Current.Revision, p.Current.Chart(), err))
		} else {
			p.Noop = true
		}
	}
	return p, nil
}

// WriteText writes the plan for a person to read.
func (p Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for release %q in namespace %q\n", p.Current.Name, p.Current.Namespace)
	if p.Latest.Revision != 0 {
		fmt.Fprintf(&b, "  latest:  revision %d, %s, chart %s (app %s): not the one to return to\n", p.Latest.Revision, p.Latest.Status, p.Latest.Chart(), p.Latest.AppVersion)
	}
	fmt.Fprintf(&b, "  current: revision %d, %s, chart %s (app %s)\n", p.Current.Revision, p.Current.Status, p.Current.Chart(), p.Current.AppVersion)
	if p.Target.ChartName != "" {
		fmt.Fprintf(&b, "  target:  chart %s (app %s)\n", p.Target.Chart(), p.Target.AppVersion)
		fmt.Fprintf(&b, "  on failure: roll back to revision %d\n", p.Current.Revision)
	}
	if p.PredictedDowntime > 0 {
		fmt.Fprintf(&b, "  downtime: at least %s predicted (Keycloak's migration of production's data on a clone); the backup and readiness come on top\n",
			p.PredictedDowntime.Round(time.Second))
	}
	d := p.Database
	if d.ServerVersion != "" {
		fmt.Fprintf(&b, "Database %q: PostgreSQL %s, %d tables, %s\n", d.Name, d.ServerVersion, d.Tables, humanBytes(d.SizeBytes))
		if d.ClientProblem == "" {
			fmt.Fprintf(&b, "  client tools: PostgreSQL %s%s (pg_dump, pg_restore, psql)\n", d.PgDumpVersion, inDir(d.ClientDir))
		} else {
			fmt.Fprintf(&b, "  client tools: none suitable\n")
		}
		if d.Schema.ChangelogRows > 0 {
			fmt.Fprintf(&b, "  Keycloak schema: %d changesets, latest %q", d.Schema.ChangelogRows, d.Schema.LatestChangeID)
			if d.Schema.MigrationVersion != "" {
				fmt.Fprintf(&b, ", migration model %s", d.Schema.MigrationVersion)
			}
			b.WriteString("\n")
		} else {
			b.WriteString("  Keycloak schema: none found (no databasechangelog table)\n")
		}
	}
	if p.Target.ChartName != "" {
		if len(p.Changes) == 0 {
			b.WriteString("Manifest: no resource changes\n")
		} else {
			fmt.Fprintf(&b, "Manifest: %d resource changes\n", len(p.Changes))
			for _, c := range p.Changes {
				sign := map[ChangeAction]string{Added: "+", Removed: "-", Changed: "~"}[c.Action]
				fmt.Fprintf(&b, "  %s %s", sign, c.Resource())
				if len(c.Immutable) > 0 {
					fmt.Fprintf(&b, "  (immutable: %s)", strings.Join(c.Immutable, ", "))
				}
				b.WriteString("\n")
			}
		}
	}
	p.writeFindings(&b)
	if len(p.SkippedRollbackHooks) > 0 {
		fmt.Fprintf(&b, "Rollback hooks of revision %d that a rollback would skip (the database is restored from this run's backup instead):\n", p.Current.Revision)
		for _, h := range p.SkippedRollbackHooks {
			fmt.Fprintf(&b, "  %s/%s (%s)\n", h.Kind, h.Name, strings.Join(h.Events, ", "))
		}
	}
	if t := p.Themes; t != nil {
		if t.Skipped != "" {
			fmt.Fprintf(&b, "Themes: not known (%s); the theme check after the upgrade is skipped\n", t.Skipped)
		} else if len(t.Uses) == 0 {
			b.WriteString("Themes: the realms name none (Keycloak's defaults)\n")
		} else {
			b.WriteString("Themes the realms name:\n")
			for _, u := range t.Uses {
				fmt.Fprintf(&b, "  %s\n", u)
			}
		}
	}
	if len(p.Warnings) > 0 {
		b.WriteString("Warnings:\n")
		for _, w := range p.Warnings {
			fmt.Fprintf(&b, "  - %s\n", w)
		}
	}
	if p.Refused() {
		b.WriteString("Refused: the upgrade would not start:\n")
		for _, err := range p.Refusals {
			fmt.Fprintf(&b, "  - %v\n", err)
		}
	} else if p.Noop {
		fmt.Fprintf(&b, "Nothing to do: revision %d already renders the target and is ready.\n", p.Current.Revision)
	} else {
		if p.Latest.Revision != 0 && len(p.Changes) == 0 {
			fmt.Fprintf(&b, "Repair: revision %d renders the target, but the latest revision %d is %s and may have left its objects behind; the upgrade re-applies the target.\n",
				p.Current.Revision, p.Latest.Revision, p.Latest.Status)
		}
		b.WriteString("Ready: the upgrade would start with a backup of the database.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// WriteDiff writes the manifest diff of every changed resource: what a dry run shows.
func (p Plan) WriteDiff(w io.Writer) error {
	var b strings.Builder
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "--- %s %s\n", c.Action, c.Resource())
		b.WriteString(c.Diff)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// inDir is " in dir", or "" when dir is empty.
func inDir(dir string) string {
	if dir == "" {
		return ""
	}
	return " in " + dir
}

// older reports whether app version a is older than b, comparing dot-separated numbers
// ("1.3.0" < "1.4.0" < "1.10"); a part that is not a number ends the comparison, and two
// versions that cannot be compared are not older.
func older(a, b string) bool {
	pa, pb := strings.Split(strings.TrimPrefix(a, "v"), "."), strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, errA := strconv.Atoi(pa[i])
		y, errB := strconv.Atoi(pb[i])
		if errA != nil || errB != nil {
			return false
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// skippedRollbackHooks are the rollback hooks of rel that a rollback to it skips: all of them
// unless rollback-hooks is run (they would restore a stale in-cluster backup, or wait forever
// for one; the procedure restores its own).
func skippedRollbackHooks(rel Release, req PlanRequest) []Hook {
	if req.RollbackHooks == HooksRun {
		return nil
	}
	var out []Hook
	for _, h := range rel.Hooks {
		if h.RunsOn("pre-rollback") || h.RunsOn("post-rollback") {
			out = append(out, h)
		}
	}
	return out
}
