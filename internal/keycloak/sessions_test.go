package keycloak

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// adminAPI is a stand-in for Keycloak, not Keycloak itself: an httptest server on 127.0.0.1
// that answers the few admin REST API calls Sessions makes the way Keycloak's documentation
// describes them (token endpoint of the master realm with the admin-cli client and the
// password grant, GET /admin/realms, POST /admin/realms/{realm}/logout-all answering 204),
// under /auth when it plays Keycloak 16 or older. It counts the logouts per realm and records
// every request it had to refuse for a reason other than the credentials.
type adminAPI struct {
	prefix         string
	user, password string
	realms         []string

	mu          sync.Mutex
	unavailable int // answer this many next requests 503, as a restarting Keycloak behind its Service
	tokens      map[string]bool
	logouts     map[string]int
	paths       []string // escaped paths of the logout-all calls
	problems    []string
	logins      int
}

func newAdminAPI(t *testing.T, prefix string, realms ...string) (*adminAPI, *httptest.Server) {
	a := &adminAPI{
		prefix: prefix, user: "admin", password: "s3cret-Passw0rd", realms: realms,
		tokens: map[string]bool{}, logouts: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+prefix+"/realms/master/protocol/openid-connect/token", a.token)
	mux.HandleFunc("GET "+prefix+"/admin/realms", a.listRealms)
	mux.HandleFunc("POST "+prefix+"/admin/realms/{realm}/logout-all", a.logoutAll)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		down := a.unavailable > 0
		if down {
			a.unavailable--
		}
		a.mu.Unlock()
		if down {
			http.Error(w, "no endpoints available", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("stand-in server not on loopback: %s", srv.URL)
	}
	return a, srv
}

func (a *adminAPI) problem(format string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.problems = append(a.problems, format)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (a *adminAPI) token(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		a.problem("token request Content-Type " + ct)
	}
	if err := r.ParseForm(); err != nil {
		a.problem("token form: " + err.Error())
	}
	if g, c := r.PostForm.Get("grant_type"), r.PostForm.Get("client_id"); g != "password" || c != "admin-cli" {
		a.problem("token form grant_type=" + g + " client_id=" + c)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unauthorized_client"})
		return
	}
	if r.URL.Query().Has("password") {
		a.problem("password in the query string")
	}
	a.mu.Lock()
	a.logins++
	a.mu.Unlock()
	if r.PostForm.Get("username") != a.user || r.PostForm.Get("password") != a.password {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": "Invalid user credentials"})
		return
	}
	tok := rand.Text()
	a.mu.Lock()
	a.tokens[tok] = true
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": 60, "token_type": "Bearer"})
}

// authorized checks the bearer token; it answers 401 itself when it is wrong.
func (a *adminAPI) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	ok = ok && a.tokens[tok]
	a.mu.Unlock()
	if !ok {
		a.problem(r.Method + " " + r.URL.Path + " without a valid bearer token")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
	}
	return ok
}

func (a *adminAPI) listRealms(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	var list []map[string]any
	for _, name := range a.realms {
		list = append(list, map[string]any{"id": "id-" + name, "realm": name, "enabled": true})
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *adminAPI) logoutAll(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	realm := r.PathValue("realm")
	if !slices.Contains(a.realms, realm) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Realm not found."})
		return
	}
	a.mu.Lock()
	a.logouts[realm]++
	a.paths = append(a.paths, r.URL.EscapedPath())
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// expire forgets every token issued, as Keycloak does when they run out.
func (a *adminAPI) expire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.tokens)
}

func (a *adminAPI) state() (logouts map[string]int, paths, problems, tokens []string, logins int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.logouts), slices.Clone(a.paths), slices.Clone(a.problems), slices.Collect(maps.Keys(a.tokens)), a.logins
}

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
			api, srv := newAdminAPI(t, tt.prefix, realms...)
			password := api.password
			if tt.password != "" {
				password = tt.password
			}
			s := Sessions{
				Admin:  &Admin{BaseURL: srv.URL + tt.url, User: api.user, Password: password, HTTP: srv.Client(), Log: testLogger(t)},
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
			logouts, paths, problems, tokens, logins := api.state()
			if err != nil {
				for _, secret := range append([]string{password, api.password}, tokens...) {
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
