package rollout

// The choices a person makes about the procedure, as typed values. The configuration binds
// each to its input; the procedure compares against these constants, never against text.

// RollbackPolicy says what a failed upgrade does.
type RollbackPolicy string

const (
	// RollbackAuto rolls the release and the database back.
	RollbackAuto RollbackPolicy = "auto"
	// RollbackNever leaves everything as the failed upgrade made it.
	RollbackNever RollbackPolicy = "never"
)

// RestoreDatabase says when the recovery restores the database from the backup.
type RestoreDatabase string

const (
	// RestoreAuto restores when the database drifted from the backup.
	RestoreAuto   RestoreDatabase = "auto"
	RestoreAlways RestoreDatabase = "always"
	RestoreNever  RestoreDatabase = "never"
)

// RollbackHooks says whether a rollback runs the pre-/post-rollback hooks of the revision it
// returns to.
type RollbackHooks string

const (
	// HooksAuto skips them: the database is restored from this run's backup instead.
	HooksAuto RollbackHooks = "auto"
	HooksRun  RollbackHooks = "run"
	HooksSkip RollbackHooks = "skip"
)

// RecreateStatefulSets says what an upgrade does with a StatefulSet whose immutable fields
// change.
type RecreateStatefulSets string

const (
	// RecreateNever refuses the upgrade.
	RecreateNever RecreateStatefulSets = "never"
	// RecreateOrphan deletes it with propagation Orphan and lets helm re-create it.
	RecreateOrphan RecreateStatefulSets = "orphan"
)

// MissingTheme says what the theme check after the upgrade does when the new Keycloak lacks a
// theme a realm names.
type MissingTheme string

const (
	// MissingThemeFail fails the upgrade, which is then rolled back.
	MissingThemeFail MissingTheme = "fail"
	// MissingThemeWarn warns and keeps the upgrade.
	MissingThemeWarn MissingTheme = "warn"
)

// Option names a choice a refusal can be got past with. How a person gives it (a flag, an
// action input) is the configuration's business: the procedure only names the option.
type Option int

const (
	OptionUnlockPending Option = iota + 1
	OptionRecreateStatefulSets
	// OptionCommand is what to run: upgrade, recover, ... (the subcommand on the command line).
	OptionCommand
	// OptionRestoreFrom is the bundle a restore restores.
	OptionRestoreFrom
	OptionMapRemovedAPIs
	OptionConvertRemovedAPIs
	OptionMigrateValues
	// OptionMissingTheme is what the theme check does with a missing theme.
	OptionMissingTheme
)

// Fix is the choice that gets past a refusal: Option set to Value.
type Fix struct {
	Option Option
	Value  string
}

// Advisor says how a person gives a Fix, in their terms (a flag on the command line, an input of
// the action).
type Advisor func(Fix) string

// advise says how to apply fix, through the request's Advisor; without one, in the
// procedure's own neutral words.
func (a Advisor) advise(fix Fix) string {
	if a == nil {
		switch fix.Option {
		case OptionCommand:
			return "run " + fix.Value
		case OptionRestoreFrom:
			return "the bundle to restore is " + fix.Value
		}
		return "change the option that allows it"
	}
	return a(fix)
}
