package keycloak

import (
	"strings"
	"testing"
	"time"
)

// One way to call: a token that ran out is renewed once, an unavailable Keycloak is asked
// again, and neither hides the cause when it persists.
func TestAdminCalls(t *testing.T) {
	t.Run("token expired between calls", func(t *testing.T) {
		api, srv := newAdminAPI(t, "/auth", "master", "alfresco")
		a := &Admin{BaseURL: srv.URL, User: api.user, Password: api.password, HTTP: srv.Client(), Log: testLogger(t)}
		if _, err := a.Realms(t.Context()); err != nil {
			t.Fatal(err)
		}
		api.expire()
		realms, err := a.Realms(t.Context())
		if err != nil {
			t.Fatalf("Realms after the token expired: %v", err)
		}
		if len(realms) != 2 {
			t.Errorf("Realms = %v, want 2", realms)
		}
		_, _, problems, _, logins := api.state()
		if logins != 2 {
			t.Errorf("%d logins, want 2 (the first, then one after the 401)", logins)
		}
		// The stand-in records the refused call; nothing else.
		if len(problems) != 1 || !strings.Contains(problems[0], "without a valid bearer token") {
			t.Errorf("problems = %q, want the one refused call", problems)
		}
		if got := a.Base(); got != srv.URL+"/auth" {
			t.Errorf("Base = %q, want the /auth base found at the first login", got)
		}
	})
	t.Run("unavailable, then up", func(t *testing.T) {
		api, srv := newAdminAPI(t, "", "master")
		api.unavailable = 2
		a := &Admin{BaseURL: srv.URL, User: api.user, Password: api.password, HTTP: srv.Client(), Pause: time.Millisecond, Log: testLogger(t)}
		if _, err := a.Realms(t.Context()); err != nil {
			t.Fatalf("Realms: %v", err)
		}
	})
	t.Run("unavailable throughout", func(t *testing.T) {
		api, srv := newAdminAPI(t, "", "master")
		api.unavailable = 100
		a := &Admin{BaseURL: srv.URL, User: api.user, Password: api.password, HTTP: srv.Client(), Pause: time.Millisecond, Attempts: 3, Log: testLogger(t)}
		_, err := a.Realms(t.Context())
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("Realms = %v, want an error with the 503", err)
		}
		api.mu.Lock()
		left := api.unavailable
		api.mu.Unlock()
		if sent := 100 - left; sent != 3 {
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
