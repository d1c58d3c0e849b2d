package keycloak

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestLogoutAll(t *testing.T) {
	realms := []string{"master", "alfresco", "team a"}
	tests := []struct {
		name     string
		prefix   string // where the stand-in serves the API
		url      string // appended to the server URL to make keycloak-url
		password string // "" means the right one
		realms   []string
		want     int
		logouts  map[string]int
		logins   int
		paths    []string
		wantErr  []string
	}{
		{
			name: "all realms", realms: nil, want: 3, logins: 1,
			logouts: map[string]int{"master": 1, "alfresco": 1, "team a": 1},
			paths:   []string{"/admin/realms/master/logout-all", "/admin/realms/alfresco/logout-all", "/admin/realms/team%20a/logout-all"},
		},
		{
			name: "all, spelled out, trailing slash", url: "/", realms: []string{"ALL"}, want: 3, logins: 1,
			logouts: map[string]int{"master": 1, "alfresco": 1, "team a": 1},
		},
		{
			name: "named realms", realms: []string{"alfresco", " team a "}, want: 2, logins: 1,
			logouts: map[string]int{"alfresco": 1, "team a": 1},
			paths:   []string{"/admin/realms/alfresco/logout-all", "/admin/realms/team%20a/logout-all"},
		},
		{
			name: "old Keycloak under /auth, found after a 404", prefix: "/auth", want: 3, logins: 1,
			logouts: map[string]int{"master": 1, "alfresco": 1, "team a": 1},
			paths:   []string{"/auth/admin/realms/master/logout-all", "/auth/admin/realms/alfresco/logout-all", "/auth/admin/realms/team%20a/logout-all"},
		},
		{
			name: "old Keycloak, keycloak-url names /auth", prefix: "/auth", url: "/auth/", realms: []string{"alfresco"}, want: 1, logins: 1,
			logouts: map[string]int{"alfresco": 1},
		},
		{
			name: "wrong password", password: "wrong-Passw0rd", logins: 1,
			wantErr: []string{"keycloak-admin-password", "401", "Invalid user credentials", `"admin"`},
		},
		{
			name: "unknown realm", realms: []string{"alfresco", "nope", "master"}, want: 1, logins: 1,
			logouts: map[string]int{"alfresco": 1},
			wantErr: []string{`realm "nope"`, "`realms` input", "404"},
		},
		{
			name: "all with names", realms: []string{"all", "master"},
			wantErr: []string{"realms", `"all" cannot be combined`},
		},
		{
			name: "not Keycloak at that URL", url: "/nothing-here", prefix: "/auth",
			wantErr: []string{"keycloak-url", "/nothing-here/realms/master/protocol/openid-connect/token", "/nothing-here/auth/realms/master", "404"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := testworld.StartKeycloak(t, tt.prefix, realmsNamed(realms...)...)
			password := api.Password
			if tt.password != "" {
				password = tt.password
			}
			s := Sessions{
				Admin:  &Admin{BaseURL: api.URL + tt.url, User: api.User, Password: password, Log: testLogger(t)},
				Realms: tt.realms, Log: testLogger(t),
			}
			got, err := s.LogoutAll(t.Context())
			if got != tt.want {
				t.Errorf("LogoutAll = %d realms, want %d", got, tt.want)
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("LogoutAll: %v", err)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("LogoutAll succeeded, want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				t.Logf("error: %v", err)
			}
			calls := api.Calls()
			logouts, paths, problems, logins := calls.Logouts, calls.Paths, calls.Problems, calls.Logins
			if err != nil {
				for _, secret := range append([]string{password, api.Password}, calls.Tokens...) {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q contains a secret", err)
					}
				}
			}
			if want := tt.logouts; !maps.Equal(logouts, want) && (len(logouts) != 0 || len(want) != 0) {
				t.Errorf("logouts = %v, want %v", logouts, want)
			}
			if tt.paths != nil && !slices.Equal(paths, tt.paths) {
				t.Errorf("logout-all paths = %q, want %q", paths, tt.paths)
			}
			if logins != tt.logins {
				t.Errorf("%d logins, want %d", logins, tt.logins)
			}
			if len(problems) != 0 {
				t.Errorf("the stand-in refused requests: %q", problems)
			}
		})
	}
}

func TestLogoutAllInputs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		s       Sessions
		wantErr string
	}{
		{"no url", Sessions{Admin: &Admin{User: "admin", Password: "p"}}, "keycloak-url is empty"},
		{"not http", Sessions{Admin: &Admin{BaseURL: "ftp://127.0.0.1/", User: "admin", Password: "p"}}, "keycloak-url"},
		{"credentials in url", Sessions{Admin: &Admin{BaseURL: "http://admin:hunter2@127.0.0.1/", User: "admin", Password: "p"}}, "keycloak-url must not carry credentials"},
		{"no user", Sessions{Admin: &Admin{BaseURL: "http://127.0.0.1:1", Password: "p"}}, "keycloak-admin-user and keycloak-admin-password"},
		{"no password", Sessions{Admin: &Admin{BaseURL: "http://127.0.0.1:1", User: "admin"}}, "keycloak-admin-user and keycloak-admin-password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.s.LogoutAll(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LogoutAll error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q contains the password of the URL", err)
			}
		})
	}
}

// realmsNamed are realms of the stand-in, named.
func realmsNamed(names ...string) []testworld.KeycloakRealm {
	var out []testworld.KeycloakRealm
	for _, n := range names {
		out = append(out, testworld.KeycloakRealm{Name: n})
	}
	return out
}
