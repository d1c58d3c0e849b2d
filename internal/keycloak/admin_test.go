package keycloak

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// One way to call: a token that ran out is renewed once, an unavailable Keycloak is asked
// again, and neither hides the cause when it persists.
func TestAdminCalls(t *testing.T) {
	t.Run("token expired between calls", func(t *testing.T) {
		api := testworld.StartKeycloak(t, "/auth", realmsNamed("master", "alfresco")...)
		a := &Admin{BaseURL: api.URL, User: api.User, Password: api.Password, Log: testLogger(t)}
		if _, err := a.Realms(t.Context()); err != nil {
			t.Fatal(err)
		}
		api.Expire()
		realms, err := a.Realms(t.Context())
		if err != nil {
			t.Fatalf("Realms after the token expired: %v", err)
		}
		if len(realms) != 2 {
			t.Errorf("Realms = %v, want 2", realms)
		}
		calls := api.Calls()
		problems, logins := calls.Problems, calls.Logins
		if logins != 2 {
			t.Errorf("%d logins, want 2 (the first, then one after the 401)", logins)
		}
		// The stand-in records the refused call; nothing else.
		if len(problems) != 1 || !strings.Contains(problems[0], "without a valid bearer token") {
			t.Errorf("problems = %q, want the one refused call", problems)
		}
		if got := a.Base(); got != api.URL+"/auth" {
			t.Errorf("Base = %q, want the /auth base found at the first login", got)
		}
	})
	t.Run("unavailable, then up", func(t *testing.T) {
		api := testworld.StartKeycloak(t, "", realmsNamed("master")...)
		api.Unavailable(2)
		a := &Admin{BaseURL: api.URL, User: api.User, Password: api.Password, Pause: time.Millisecond, Log: testLogger(t)}
		if _, err := a.Realms(t.Context()); err != nil {
			t.Fatalf("Realms: %v", err)
		}
	})
	t.Run("unavailable throughout", func(t *testing.T) {
		api := testworld.StartKeycloak(t, "", realmsNamed("master")...)
		api.Unavailable(100)
		a := &Admin{BaseURL: api.URL, User: api.User, Password: api.Password, Pause: time.Millisecond, Attempts: 3, Log: testLogger(t)}
		_, err := a.Realms(t.Context())
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("Realms = %v, want an error with the 503", err)
		}
		if sent := 100 - api.Calls().Unavailable; sent != 3 {
			t.Errorf("%d requests sent, want 3 attempts", sent)
		}
	})
	t.Run("not configured", func(t *testing.T) {
		for _, a := range []*Admin{nil, {}, {BaseURL: "http://127.0.0.1:1", User: "admin"}} {
			if a.Configured() {
				t.Errorf("%+v is configured", a)
			}
		}
		if !(&Admin{BaseURL: "http://127.0.0.1:1", User: "admin", Password: "p"}).Configured() {
			t.Error("a complete Admin is not configured")
		}
	})
}

// Serverinfo and a realm's partial export, read from the stand-in as Keycloak 12 answers.
func TestAdminRealmsAndThemes(t *testing.T) {
	api := testworld.StartKeycloak(t, "/auth",
		testworld.KeycloakRealm{Name: "master"},
		testworld.KeycloakRealm{Name: "alfresco", LoginTheme: "acme", EmailTheme: "alfresco", ClientSecret: "client-Secret-1"})
	api.AddThemes("alfresco")
	a := &Admin{BaseURL: api.URL, User: api.User, Password: api.Password, Log: testLogger(t)}
	realms, err := a.Realms(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(realms) != 2 || realms[1].LoginTheme != "acme" || !slices.Equal(realms[1].Themes(), []rollout.ThemeUse{{Realm: "alfresco", Kind: "login", Theme: "acme"}, {Realm: "alfresco", Kind: "email", Theme: "alfresco"}}) ||
		len(realms[0].Themes()) != 0 {
		t.Errorf("realms %+v", realms)
	}
	info, err := a.ServerInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "12.0.4" || !info.Has("login", "keycloak") || !info.Has("email", "alfresco") || info.Has("login", "acme") {
		t.Errorf("server info %+v", info)
	}
	export, err := a.PartialExport(t.Context(), "alfresco")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(export), `"realm":"alfresco"`) || !strings.Contains(string(export), `"secret":"**********"`) ||
		strings.Contains(string(export), "client-Secret-1") {
		t.Errorf("export %s", export)
	}
	if _, err := a.PartialExport(t.Context(), "nope"); err == nil || !strings.Contains(err.Error(), `export realm "nope": 404`) {
		t.Errorf("export of a missing realm: %v", err)
	}
	if calls := api.Calls(); len(calls.Problems) != 0 || calls.Logins != 1 {
		t.Errorf("%d logins, problems %q", calls.Logins, calls.Problems)
	}
}
