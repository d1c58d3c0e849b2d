package testworld

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Keycloak is a stand-in for Keycloak's admin REST API, not Keycloak itself: an httptest
// server on 127.0.0.1 that answers the calls identity-upgrade makes the way Keycloak's
// documentation and Keycloak 11 and 12 answer them, under /auth when it plays Keycloak 16 or
// older:
//
//   - POST /realms/master/protocol/openid-connect/token: the admin-cli client's password
//     grant, a bearer token that Expire forgets;
//   - GET /admin/realms: every realm's representation, with the themes it names;
//   - POST /admin/realms/{realm}/logout-all: 204, counted;
//   - POST /admin/realms/{realm}/partial-export?exportClients=true&exportGroupsAndRoles=true:
//     the realm with its clients, their secrets masked as Keycloak masks them;
//   - GET /admin/serverinfo: the version and the themes of the Keycloak that runs now.
//
// Which themes Keycloak has depends on what runs: with WatchPods, the themes are those of the
// Ready Keycloak pods of a namespace of the simulated cluster, as Keycloak finds them in its
// themes directory: the built-in ones, the image's own (alfresco in the Identity Service's),
// every directory a volume is mounted on under .../themes/ (what an init container copied
// there), and those copied into a running pod by hand (CopyTheme), which go with the pod.
// Without a Ready pod serverinfo answers 503, as a Keycloak that is down behind its Service.
// Without WatchPods it has the built-in themes and Themes.
type Keycloak struct {
	// URL is the keycloak-url to give: the server's root, without /auth.
	URL            string
	User, Password string
	// Version is what serverinfo reports.
	Version string

	prefix string
	realms []KeycloakRealm

	mu          sync.Mutex
	unavailable int // the next requests answered 503
	tokens      map[string]bool
	logouts     map[string]int
	paths       []string // escaped paths of the logout-all calls
	exports     []string // realms exported
	problems    []string
	logins      int
	themes      []string // without pods: the themes besides the built-in ones
	kube        *Kube
	selector    string
	copied      map[types.UID][]string
}

// KeycloakRealm is a realm of the stand-in: its name, the themes it names and a confidential
// client with a secret.
type KeycloakRealm struct {
	Name                                             string
	LoginTheme, AccountTheme, AdminTheme, EmailTheme string
	ClientSecret                                     string
}

// KeycloakAdminUser and KeycloakAdminPassword are the master realm's admin in the stand-ins,
// production's and its clones' (a clone holds production's data, its admin included).
const (
	KeycloakAdminUser     = "admin"
	KeycloakAdminPassword = "s3cret-Passw0rd"
)

// KeycloakBuiltinThemes are the themes of Keycloak 11 and 12 themselves.
var KeycloakBuiltinThemes = []string{"base", "keycloak", "keycloak.v2"}

// keycloakImageThemes are the themes the Identity Service images add to Keycloak's.
var keycloakImageThemes = map[string][]string{
	"alfresco/alfresco-identity-service": {"alfresco"},
}

// StartKeycloak starts the stand-in with its API under prefix ("" or "/auth") and the realms;
// it stops when the test ends.
func StartKeycloak(t testing.TB, prefix string, realms ...KeycloakRealm) *Keycloak {
	t.Helper()
	k := &Keycloak{
		User: KeycloakAdminUser, Password: KeycloakAdminPassword, Version: "12.0.4", prefix: prefix, realms: realms,
		tokens: map[string]bool{}, logouts: map[string]int{}, copied: map[types.UID][]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+prefix+"/realms/master/protocol/openid-connect/token", k.token)
	mux.HandleFunc("GET "+prefix+"/admin/realms", k.listRealms)
	mux.HandleFunc("POST "+prefix+"/admin/realms/{realm}/logout-all", k.logoutAll)
	mux.HandleFunc("POST "+prefix+"/admin/realms/{realm}/partial-export", k.partialExport)
	mux.HandleFunc("GET "+prefix+"/admin/serverinfo", k.serverInfo)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		down := k.unavailable > 0
		if down {
			k.unavailable--
		}
		k.mu.Unlock()
		if down {
			http.Error(w, "no endpoints available", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("testworld: Keycloak stand-in not on loopback: %s", srv.URL)
	}
	k.URL = srv.URL
	return k
}

// WatchPods makes serverinfo's themes those of the Ready pods of kube's namespace that the
// label selector selects (the release's Keycloak pods).
func (k *Keycloak) WatchPods(kube Kube, selector string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kube, k.selector = &kube, selector
}

// CopyTheme records a theme copied by hand into the running pod (kubectl cp): Keycloak has it
// while that pod lives.
func (k *Keycloak) CopyTheme(pod *corev1.Pod, theme string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.copied[pod.UID] = append(k.copied[pod.UID], theme)
}

// AddThemes gives a Keycloak without WatchPods themes besides the built-in ones.
func (k *Keycloak) AddThemes(themes ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.themes = append(k.themes, themes...)
}

// Unavailable answers the next n requests 503.
func (k *Keycloak) Unavailable(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unavailable = n
}

// Expire forgets every token issued, as Keycloak does when they run out.
func (k *Keycloak) Expire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.tokens)
}

// KeycloakCalls is what the stand-in saw.
type KeycloakCalls struct {
	Logouts map[string]int // logout-all calls per realm
	Paths   []string       // escaped paths of the logout-all calls
	Exports []string       // realms exported
	// Problems are the requests it refused for a reason other than the credentials.
	Problems []string
	Tokens   []string // every token it issued and still honours
	Logins   int
	// Unavailable is how many of the 503s asked for with Unavailable are still to come.
	Unavailable int
}

// Calls returns what the stand-in saw so far.
func (k *Keycloak) Calls() KeycloakCalls {
	k.mu.Lock()
	defer k.mu.Unlock()
	return KeycloakCalls{
		Logouts: maps.Clone(k.logouts), Paths: slices.Clone(k.paths), Exports: slices.Clone(k.exports),
		Problems: slices.Clone(k.problems), Tokens: slices.Collect(maps.Keys(k.tokens)), Logins: k.logins,
		Unavailable: k.unavailable,
	}
}

func (k *Keycloak) problem(p string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.problems = append(k.problems, p)
}

func keycloakJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (k *Keycloak) token(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		k.problem("token request Content-Type " + ct)
	}
	if err := r.ParseForm(); err != nil {
		k.problem("token form: " + err.Error())
	}
	if g, c := r.PostForm.Get("grant_type"), r.PostForm.Get("client_id"); g != "password" || c != "admin-cli" {
		k.problem("token form grant_type=" + g + " client_id=" + c)
		keycloakJSON(w, http.StatusBadRequest, map[string]string{"error": "unauthorized_client"})
		return
	}
	if r.URL.Query().Has("password") {
		k.problem("password in the query string")
	}
	k.mu.Lock()
	k.logins++
	k.mu.Unlock()
	if r.PostForm.Get("username") != k.User || r.PostForm.Get("password") != k.Password {
		keycloakJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": "Invalid user credentials"})
		return
	}
	grantToken(w, &k.mu, k.tokens)
}

// grantToken answers a login with a new bearer token, which tokens (guarded by mu) then hold.
func grantToken(w http.ResponseWriter, mu *sync.Mutex, tokens map[string]bool) {
	tok := rand.Text()
	mu.Lock()
	tokens[tok] = true
	mu.Unlock()
	keycloakJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": 60, "token_type": "Bearer"})
}

// validToken reports whether the request's bearer token is one of tokens (guarded by mu).
func validToken(r *http.Request, mu *sync.Mutex, tokens map[string]bool) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	mu.Lock()
	defer mu.Unlock()
	return ok && tokens[tok]
}

// authorized checks the bearer token; it answers 401 itself when it is wrong.
func (k *Keycloak) authorized(w http.ResponseWriter, r *http.Request) bool {
	ok := validToken(r, &k.mu, k.tokens)
	if !ok {
		k.problem(r.Method + " " + r.URL.Path + " without a valid bearer token")
		keycloakJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
	}
	return ok
}

// representation is a realm as the admin API shows it.
func (r KeycloakRealm) representation() map[string]any {
	rep := map[string]any{"id": "id-" + r.Name, "realm": r.Name, "enabled": true}
	for key, theme := range map[string]string{"loginTheme": r.LoginTheme, "accountTheme": r.AccountTheme, "adminTheme": r.AdminTheme, "emailTheme": r.EmailTheme} {
		if theme != "" {
			rep[key] = theme
		}
	}
	return rep
}

func (k *Keycloak) realm(name string) (KeycloakRealm, bool) {
	for _, r := range k.realms {
		if r.Name == name {
			return r, true
		}
	}
	return KeycloakRealm{}, false
}

func (k *Keycloak) listRealms(w http.ResponseWriter, r *http.Request) {
	if !k.authorized(w, r) {
		return
	}
	var list []map[string]any
	for _, realm := range k.realms {
		list = append(list, realm.representation())
	}
	keycloakJSON(w, http.StatusOK, list)
}

func (k *Keycloak) logoutAll(w http.ResponseWriter, r *http.Request) {
	if !k.authorized(w, r) {
		return
	}
	name := r.PathValue("realm")
	if _, ok := k.realm(name); !ok {
		keycloakJSON(w, http.StatusNotFound, map[string]string{"error": "Realm not found."})
		return
	}
	k.mu.Lock()
	k.logouts[name]++
	k.paths = append(k.paths, r.URL.EscapedPath())
	k.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// partialExport answers as Keycloak 11 and 12 do: the realm, its clients and roles, every
// client secret replaced by "**********".
func (k *Keycloak) partialExport(w http.ResponseWriter, r *http.Request) {
	if !k.authorized(w, r) {
		return
	}
	name := r.PathValue("realm")
	realm, ok := k.realm(name)
	if !ok {
		keycloakJSON(w, http.StatusNotFound, map[string]string{"error": "Realm not found."})
		return
	}
	q := r.URL.Query()
	if q.Get("exportClients") != "true" || q.Get("exportGroupsAndRoles") != "true" {
		k.problem("partial-export of " + name + " without exportClients=true&exportGroupsAndRoles=true: " + r.URL.RawQuery)
	}
	rep := realm.representation()
	client := map[string]any{"clientId": name + "-app", "enabled": true, "publicClient": false, "clientAuthenticatorType": "client-secret"}
	if realm.ClientSecret != "" {
		client["secret"] = "**********"
	}
	rep["clients"] = []any{client}
	rep["roles"] = map[string]any{"realm": []any{map[string]any{"name": "offline_access"}}}
	rep["groups"] = []any{}
	k.mu.Lock()
	k.exports = append(k.exports, name)
	k.mu.Unlock()
	keycloakJSON(w, http.StatusOK, rep)
}

func (k *Keycloak) serverInfo(w http.ResponseWriter, r *http.Request) {
	if !k.authorized(w, r) {
		return
	}
	themes, running, err := k.runningThemes(r)
	if err != nil {
		keycloakJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if !running {
		http.Error(w, "no endpoints available for service keycloak", http.StatusServiceUnavailable)
		return
	}
	keycloakJSON(w, http.StatusOK, serverInfo(k.Version, themes))
}

// serverInfo is the admin API's serverinfo of a Keycloak of that version with those themes.
func serverInfo(version string, themes []string) map[string]any {
	var list []map[string]any
	for _, name := range themes {
		list = append(list, map[string]any{"name": name, "locales": []string{"en"}})
	}
	byKind := map[string]any{}
	for _, kind := range []string{"login", "account", "admin", "email", "welcome", "common"} {
		byKind[kind] = list
	}
	return map[string]any{
		"systemInfo": map[string]any{"version": version, "serverTime": "Mon Dec 07 00:00:00 UTC 2026"},
		"themes":     byKind,
	}
}

// runningThemes are the themes of the Keycloak that runs now, and whether one runs.
func (k *Keycloak) runningThemes(r *http.Request) ([]string, bool, error) {
	k.mu.Lock()
	kube, selector := k.kube, k.selector
	extra := slices.Clone(k.themes)
	copied := map[types.UID][]string{}
	maps.Copy(copied, k.copied)
	k.mu.Unlock()
	themes := append(slices.Clone(KeycloakBuiltinThemes), extra...)
	if kube == nil {
		return themes, true, nil
	}
	pods, err := kube.Client.CoreV1().Pods(kube.Namespace).List(r.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, false, err
	}
	found, running := podThemes(pods.Items, copied)
	return mergeThemes(themes, found), running, nil
}

// podThemes are the themes the Ready Keycloak pods among pods have, as Keycloak finds them in
// its themes directory: the image's own, every directory a volume is mounted on under
// .../themes/, and those copied into the pod by hand (copied, by pod); running says whether
// one of them is Ready.
func podThemes(pods []corev1.Pod, copied map[types.UID][]string) (themes []string, running bool) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil || !podReady(&p) || len(p.Spec.Containers) == 0 {
			continue
		}
		running = true
		c := p.Spec.Containers[0]
		repo, _, _ := strings.Cut(c.Image, ":")
		themes = append(themes, keycloakImageThemes[repo]...)
		for _, m := range c.VolumeMounts {
			if dir, name := path.Split(path.Clean(m.MountPath)); path.Base(dir) == "themes" {
				themes = append(themes, name)
			}
		}
		themes = append(themes, copied[p.UID]...)
	}
	return themes, running
}

// mergeThemes returns the sorted union of theme lists.
func mergeThemes(lists ...[]string) []string {
	out := slices.Concat(lists...)
	slices.Sort(out)
	return slices.Compact(out)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
