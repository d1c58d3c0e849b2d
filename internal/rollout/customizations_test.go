package rollout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// customizer is a hand-written fake of the customizations port, on the pipeline's world.
type customizer struct {
	w        *world
	saved    rollout.Customizations
	check    rollout.ThemeCheck
	checkErr error
	plan     rollout.ThemePlan
	planErr  error
	// backedUp is the customizations the backup got.
	backedUp *rollout.Customizations
}

func (c *customizer) Save(ctx context.Context, namespace, manifest string) (rollout.Customizations, error) {
	c.w.call(ctx, "save customizations")
	return c.saved, nil
}

func (c *customizer) PlanThemes(ctx context.Context, namespace string, current, target rollout.Release) (rollout.ThemePlan, error) {
	c.w.call(ctx, "plan themes")
	return c.plan, c.planErr
}

func (c *customizer) CheckThemes(ctx context.Context, saved rollout.Customizations) (rollout.ThemeCheck, error) {
	c.w.call(ctx, "check themes")
	return c.check, c.checkErr
}

// database records the customizations the backup is given.
type database struct {
	*world
	c *customizer
}

func (d database) Backup(ctx context.Context, req rollout.BackupRequest) (rollout.Backup, error) {
	d.c.backedUp = req.Customizations
	return d.world.Backup(ctx, req)
}

// The customizations are saved while Keycloak runs, before the quiesce, and go into the
// backup; after readiness the theme check decides: a theme the new Keycloak lacks fails the
// upgrade, which is rolled back, unless missing-theme is warn.
func TestUpgradeCustomizations(t *testing.T) {
	acme := rollout.ThemeUse{Realm: "alfresco", Kind: "login", Theme: "acme", Origin: "init container theme-acme (image acme/theme:1)"}
	saved := rollout.Customizations{Dir: "/work/c", Saved: []rollout.Saved{{Kind: "themes", Names: []string{"acme"}}}, Themes: []rollout.ThemeUse{acme}}
	before := []string{"lock", "current", "current", "render", "inspect", "plan themes", "save customizations", "scale down", "values 4", "backup r4", "upgrade", "wait"}
	recovery := []string{"scale down", "drift", "mark failed 5", "rollback 4", "wait rolled-back", "unlock lease"}
	tests := []struct {
		name     string
		saved    rollout.Customizations
		check    rollout.ThemeCheck
		checkErr error
		policy   rollout.MissingTheme
		result   rollout.Result
		calls    []string
		failure  []string
		note     string
	}{
		{name: "every theme there", saved: saved, check: rollout.ThemeCheck{Checked: 1, Version: "12.0.4"},
			result: rollout.Upgraded, calls: append(slices.Clone(before), "check themes", "unlock lease"),
			note: "every theme the realms name is there (1 checked, Keycloak 12.0.4)"},
		{name: "a theme missing", saved: saved, check: rollout.ThemeCheck{Checked: 1, Version: "12.0.4", Missing: []rollout.ThemeUse{acme}},
			result: rollout.RolledBack, calls: append(append(slices.Clone(before), "check themes"), recovery...),
			failure: []string{"theme check: a theme a realm names is missing from the new Keycloak: Keycloak 12.0.4 lacks 1 of the 1 themes the realms name: " +
				`realm alfresco: login theme "acme" (init container theme-acme (image acme/theme:1))`, "--missing-theme warn"}},
		{name: "a theme missing, missing-theme warn", saved: saved, check: rollout.ThemeCheck{Checked: 1, Version: "12.0.4", Missing: []rollout.ThemeUse{acme}},
			policy: rollout.MissingThemeWarn, result: rollout.Upgraded, calls: append(slices.Clone(before), "check themes", "unlock lease"),
			note: "(missing-theme: warn)"},
		{name: "no admin API: skipped", saved: rollout.Customizations{Dir: "/work/c", ThemeCheckSkipped: "keycloak-url is not given"},
			result: rollout.Upgraded, calls: append(slices.Clone(before), "unlock lease"), note: "skipped: keycloak-url is not given"},
		{name: "the check cannot read the admin API", saved: saved, checkErr: errors.New("theme check: read Keycloak's server info: 503"),
			result: rollout.RolledBack, calls: append(append(slices.Clone(before), "check themes"), recovery...),
			failure: []string{"theme check: read Keycloak's server info: 503"}},
		{name: "the check cannot read the admin API, missing-theme warn", saved: saved, checkErr: errors.New("theme check: read Keycloak's server info: 503"),
			policy: rollout.MissingThemeWarn, result: rollout.Upgraded, calls: append(slices.Clone(before), "check themes", "unlock lease"),
			note: "skipped: theme check: read Keycloak's server info: 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			c := &customizer{w: w, saved: tt.saved, check: tt.check, checkErr: tt.checkErr}
			p := w.pipeline()
			p.Database, p.Customizer = database{w, c}, c
			req := request()
			req.MissingTheme = rollout.MissingThemeFail
			if tt.policy != "" {
				req.MissingTheme = tt.policy
			}
			rep := p.Upgrade(t.Context(), req)
			if rep.Result != tt.result {
				t.Errorf("result %s (exit %d), want %s; failure %v", rep.Result, rep.ExitCode(), tt.result, rep.Failure)
			}
			if !slices.Equal(w.calls, tt.calls) {
				t.Errorf("calls\n got %q\nwant %q", w.calls, tt.calls)
			}
			if c.backedUp == nil || c.backedUp.Dir != "/work/c" {
				t.Errorf("the backup got customizations %+v", c.backedUp)
			}
			for _, f := range tt.failure {
				if rep.Failure == nil || !strings.Contains(rep.Failure.Error(), f) {
					t.Errorf("failure %v lacks %q", rep.Failure, f)
				}
			}
			if len(tt.failure) == 0 && rep.Failure != nil {
				t.Errorf("failure %v", rep.Failure)
			}
			if tt.failure != nil && tt.checkErr == nil && !errors.Is(rep.Failure, rollout.ErrMissingTheme) {
				t.Errorf("failure %v is not ErrMissingTheme", rep.Failure)
			}
			if rep.ThemeCheck == nil && tt.checkErr == nil {
				t.Error("the report has no theme check")
			}
			if tt.note != "" {
				var got string
				for _, s := range rep.Timeline {
					if s.Name == "theme check" {
						got = s.Note
					}
				}
				if !strings.Contains(got, tt.note) {
					t.Errorf("theme check note %q, want %q", got, tt.note)
				}
			}
		})
	}
}

// The plan says which themes the realms name and warns of each the target would not have; a
// port that cannot tell says why, and refuses nothing.
func TestPlanThemes(t *testing.T) {
	acme := rollout.ThemeUse{Realm: "alfresco", Kind: "login", Theme: "acme", Origin: "init container theme-acme (image acme/theme:1) of revision 4; the target's values bring none"}
	kc := rollout.ThemeUse{Realm: "alfresco", Kind: "account", Theme: "keycloak", Origin: "Keycloak's own"}
	for _, tt := range []struct {
		name     string
		plan     rollout.ThemePlan
		planErr  error
		text     []string
		warnings int
	}{
		{name: "a theme lost", plan: rollout.ThemePlan{Uses: []rollout.ThemeUse{acme, kc}, Lost: []rollout.ThemeUse{acme}, Dropped: []string{"acme"}},
			text: []string{"Themes the realms name:\n  realm alfresco: login theme \"acme\" (init container", "  realm alfresco: account theme \"keycloak\" (Keycloak's own)\n",
				`the target would not have theme "acme", which realm alfresco names as its login theme`}, warnings: 1},
		{name: "no admin API", plan: rollout.ThemePlan{Skipped: "keycloak-url is not given", Dropped: []string{"acme"}},
			text: []string{"Themes: not known (keycloak-url is not given); the theme check after the upgrade is skipped", "the target's values bring none of the themes acme"}, warnings: 1},
		{name: "the admin API fails", planErr: errors.New("list the realms: 503"),
			text: []string{"Themes: not known (list the realms: 503)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			c := &customizer{w: w, plan: tt.plan, planErr: tt.planErr}
			plan, err := rollout.MakePlan(t.Context(), w, w, nil, request().PlanRequest)
			if err != nil {
				t.Fatal(err)
			}
			rollout.PlanThemes(t.Context(), c, &plan)
			if plan.Refused() || len(plan.Warnings) != tt.warnings {
				t.Errorf("refusals %v, warnings %q", plan.Refusals, plan.Warnings)
			}
			var b strings.Builder
			if err := plan.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.text {
				if !strings.Contains(b.String(), want) {
					t.Errorf("plan lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}
