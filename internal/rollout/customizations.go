package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Summary says what was saved, for the timeline: counts and names, and how many warnings.
func (c Customizations) Summary() string {
	var parts []string
	for _, s := range c.Saved {
		parts = append(parts, s.String())
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing found to save")
	}
	if n := len(c.Warnings); n > 0 {
		parts = append(parts, fmt.Sprintf("%d not saved (see the warnings)", n))
	}
	return strings.Join(parts, "; ")
}

// ErrMissingTheme marks a theme that a realm names and the upgraded Keycloak does not have.
var ErrMissingTheme = errors.New("a theme a realm names is missing from the new Keycloak")

// Customizer saves what Keycloak is configured with before the downtime (the vendor's "back
// up any customizations such as themes or configurations"), and checks after the upgrade
// that the new Keycloak has every theme a realm names. Implemented by keycloak.
type Customizer interface {
	// Save collects the customizations of the release whose manifest is given into a local
	// directory (Customizations.Dir), which the backup then carries. What cannot be read is a
	// warning in the result, not an error.
	Save(ctx context.Context, namespace, manifest string) (Customizations, error)
	// CheckThemes finds the themes of saved.Themes that the running Keycloak lacks.
	CheckThemes(ctx context.Context, saved Customizations) (ThemeCheck, error)
	// PlanThemes says, before anything changes, which themes the realms name and which of
	// them the target would not have, as far as the two revisions' manifests tell.
	PlanThemes(ctx context.Context, namespace string, current, target Release) (ThemePlan, error)
}

// ThemePlan is what the plan says of the themes: those the realms name, with where each comes
// from, and those the target would not have (a theme an init container of the current
// revision brings that the target's values drop).
type ThemePlan struct {
	// Skipped says why the themes the realms name are not known ("" when they are).
	Skipped string
	Uses    []ThemeUse
	// Lost are the theme uses the target would not have; Dropped the themes the current
	// revision's init containers bring that the target's do not, named whether or not a
	// realm is known to use them.
	Lost    []ThemeUse
	Dropped []string
}

// PlanThemes adds what the customizations port says of the themes to the plan: the themes in
// use, and a warning for each the target would not have. A port that cannot tell says why in
// the plan; it never refuses the upgrade.
func PlanThemes(ctx context.Context, c Customizer, p *Plan) {
	if c == nil || p.Target.Manifest == "" {
		return
	}
	tp, err := c.PlanThemes(ctx, p.Request.Namespace, p.Current, p.Target)
	if err != nil {
		tp.Skipped = err.Error()
	}
	p.Themes = &tp
	for _, u := range tp.Lost {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the target would not have theme %q, which realm %s names as its %s theme (%s): "+
			"the theme check after the upgrade would fail; bring the theme with the target's values", u.Theme, u.Realm, u.Kind, u.Origin))
	}
	if len(tp.Lost) == 0 && len(tp.Dropped) > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the target's values bring none of the themes %s that the current revision's init containers bring",
			strings.Join(tp.Dropped, ", ")))
	}
}

// Customizations is what was saved of Keycloak's customizations.
type Customizations struct {
	// Dir holds them as collected (a working copy); the backup packs it into its bundle.
	Dir string
	// Saved lists what was saved, by kind, for the report: names, never content.
	Saved []Saved
	// Themes are the themes the realms name, and where each came from.
	Themes []ThemeUse
	// Warnings say what could not be saved and why.
	Warnings []string
	// ThemeCheckSkipped says why the theme check cannot run, "" when it can.
	ThemeCheckSkipped string
}

// Saved is one kind of customization saved ("ConfigMaps", "Secrets", "realm exports",
// "themes", "Keycloak home") and the names saved.
type Saved struct {
	Kind  string
	Names []string
}

func (s Saved) String() string {
	return fmt.Sprintf("%d %s (%s)", len(s.Names), s.Kind, strings.Join(s.Names, ", "))
}

// ThemeUse is a theme a realm names, and where it came from before the upgrade (an init
// container, the image, a copy by hand, Keycloak itself).
type ThemeUse struct {
	Realm, Kind, Theme, Origin string
}

func (u ThemeUse) String() string {
	s := fmt.Sprintf("realm %s: %s theme %q", u.Realm, u.Kind, u.Theme)
	if u.Origin != "" {
		s += " (" + u.Origin + ")"
	}
	return s
}

// ThemeCheck is what the theme check after the upgrade found.
type ThemeCheck struct {
	// Skipped says why the check did not run, "" when it did.
	Skipped string
	// Checked is how many theme uses were checked; Missing those the new Keycloak lacks.
	Checked int
	Missing []ThemeUse
	// Version is the upgraded Keycloak's.
	Version string
}

// String says what the check found, for the report.
func (c ThemeCheck) String() string {
	switch {
	case c.Skipped != "":
		return "skipped: " + c.Skipped
	case len(c.Missing) == 0:
		return fmt.Sprintf("every theme the realms name is there (%d checked, Keycloak %s)", c.Checked, c.Version)
	}
	var missing []string
	for _, m := range c.Missing {
		missing = append(missing, m.String())
	}
	return fmt.Sprintf("Keycloak %s lacks %d of the %d themes the realms name: %s", c.Version, len(c.Missing), c.Checked, strings.Join(missing, "; "))
}

// customizations saves the customizations while Keycloak still runs (its themes are in its
// pods), before the quiesce; the backup carries them.
func (r *run) customizations(ctx context.Context) error {
	if r.p.Customizer == nil {
		return nil
	}
	return r.step(ctx, "customizations", func(ctx context.Context) (string, error) {
		c, err := r.p.Customizer.Save(ctx, r.req.Namespace, r.rep.Plan.Current.Manifest)
		if err != nil {
			return "", err
		}
		r.rep.Customizations = &c
		return c.Summary(), nil
	})
}

// themeCheck checks, after readiness, that the new Keycloak has every theme a realm names. A
// missing theme fails the upgrade, which then goes back, unless missing-theme is warn; so does
// a check that cannot read the admin API.
func (r *run) themeCheck(ctx context.Context) error {
	if r.p.Customizer == nil {
		return nil
	}
	return r.cancelled(ctx, r.step(ctx, "theme check", r.checkThemes))
}

func (r *run) checkThemes(ctx context.Context) (string, error) {
	if r.rep.Customizations == nil {
		r.rep.ThemeCheck = &ThemeCheck{Skipped: "the customizations were not saved"}
		return "skipped: " + r.rep.ThemeCheck.Skipped, nil
	}
	if why := r.rep.Customizations.ThemeCheckSkipped; why != "" {
		r.rep.ThemeCheck = &ThemeCheck{Skipped: why}
		return "skipped: " + why, nil
	}
	warn := r.req.MissingTheme == MissingThemeWarn
	check, err := r.p.Customizer.CheckThemes(ctx, *r.rep.Customizations)
	if err != nil {
		if warn {
			r.rep.ThemeCheck = &ThemeCheck{Skipped: err.Error()}
			r.log.Warn("the theme check could not run (missing-theme: warn)", "err", err)
			return "skipped: " + err.Error(), nil
		}
		return "", err
	}
	r.rep.ThemeCheck = &check
	switch {
	case len(check.Missing) == 0:
		return check.String(), nil
	case warn:
		for _, m := range check.Missing {
			r.log.Warn("a theme a realm names is missing after the upgrade (missing-theme: warn)", "realm", m.Realm, "kind", m.Kind, "theme", m.Theme, "origin", m.Origin)
		}
		return check.String() + " (missing-theme: warn)", nil
	}
	return "", fmt.Errorf("%w: %s; bring the themes to the new version (the target's values or image), or %s to keep an upgrade that lacks them",
		ErrMissingTheme, check, r.req.Advise.advise(Fix{OptionMissingTheme, string(MissingThemeWarn)}))
}
