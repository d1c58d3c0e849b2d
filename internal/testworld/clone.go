package testworld

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The rehearsal's clone, for real: a release's rehearsal namespace is one of CloneNamespaces,
// whose pods' port-forwards reach other servers than production's.
//   - PostgreSQL (PodPostgresPort) of a pod in a clone namespace reaches the clone server, a
//     second PostgreSQL server of the binary (not production's), where
//     CloneDatabase makes the clone's database as the chart's bundled PostgreSQL would: same
//     name, same owner and password, empty. The clone is a real, separate database.
//   - Keycloak's HTTP port (PodKeycloakPort) of a pod in a clone namespace reaches a stand-in of
//     that namespace's Keycloak, which answers for the realms the clone's database holds: the
//     OIDC discovery document of each, 404 for any other.
// kwok matches a pod's port-forward to the first ClusterPortForward whose selector names its
// namespace, so the clone namespaces come before the catch-all of 92-portforward.yaml.tmpl.

// CloneNamespaces are the namespaces whose pods the test world serves with clones.
var CloneNamespaces = []string{"clone-1", "clone-2", "clone-3", "clone-4"}

// PodKeycloakPort is the container port of Keycloak's HTTP in the test charts.
const PodKeycloakPort = 8080

// clones is the clone side of a cluster: its relays and which namespaces tests hold.
type clones struct {
	postgres *relay
	keycloak map[string]*keycloakStandIn // by namespace

	mu    sync.Mutex
	taken map[string]bool
}

func startClones() (*clones, error) {
	c := &clones{keycloak: map[string]*keycloakStandIn{}, taken: map[string]bool{}}
	var err error
	if c.postgres, err = startRelay(clonePostgresAddr); err != nil {
		return nil, err
	}
	for _, ns := range CloneNamespaces {
		k, err := startKeycloakStandIn()
		if err != nil {
			c.close()
			return nil, err
		}
		c.keycloak[ns] = k
	}
	return c, nil
}

func (c *clones) close() {
	if c.postgres != nil {
		c.postgres.close()
	}
	for _, k := range c.keycloak {
		k.close()
	}
}

// cloneForwards is what the cluster configuration's template needs of the clones.
type cloneForwards struct {
	PostgresRelayPort int
	Namespaces        []string
	KeycloakPorts     map[string]int // by namespace
}

func (c *clones) forwards() cloneForwards {
	f := cloneForwards{PostgresRelayPort: c.postgres.port(), Namespaces: CloneNamespaces, KeycloakPorts: map[string]int{}}
	for ns, k := range c.keycloak {
		f.KeycloakPorts[ns] = k.port()
	}
	return f
}

// Clone is a test's clone namespace and the clone's database there.
type Clone struct {
	// Namespace is the rehearsal namespace to give the run (it does not exist yet: the run
	// creates it).
	Namespace string
	// Database is the clone's database on the clone server: what the chart's bundled
	// PostgreSQL in Namespace would be, for the release whose database is prod.
	Database Database
}

// CloneOf reserves a clone namespace for the test (waiting for one while others hold them all)
// and makes the clone's database for the release whose database is prod, as the chart's
// bundled PostgreSQL would: the same name, owner and password, empty. Both go when the test
// ends; the namespace must be gone by then (the run deletes it).
func (k Kube) CloneOf(t testing.TB, prod Database) Clone {
	t.Helper()
	clone, release, err := k.cluster.Clone(t.Context(), prod)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Errorf("testworld: %v", err)
		}
	})
	return clone
}

// Clone is CloneOf outside a test: release gives the namespace back and drops the clone's
// database.
func (c *KubeCluster) Clone(ctx context.Context, prod Database) (clone Clone, release func() error, err error) {
	srv, err := shared.clonePG()
	if err != nil {
		return Clone{}, nil, fmt.Errorf("clone server: %w", err)
	}
	cl := c.clones
	ns, err := cl.take(ctx)
	if err != nil {
		return Clone{}, nil, err
	}
	// The chart's bundled PostgreSQL is initialised with the release's values: production's
	// user and password.
	cl.mu.Lock()
	if srv.ownerPassword != prod.OwnerPassword {
		if _, err := psql(ctx, srv.psqlDir, "127.0.0.1", srv.port, "postgres", pgSuperUser, srv.superPassword,
			fmt.Sprintf(`ALTER ROLE %q PASSWORD '%s'`, pgOwner, prod.OwnerPassword)); err != nil {
			cl.mu.Unlock()
			cl.give(ns)
			return Clone{}, nil, fmt.Errorf("give the clone server's owner production's password: %w", err)
		}
		srv.ownerPassword = prod.OwnerPassword
	}
	db, err := srv.CreateDatabase(ctx, prod.Database)
	cl.mu.Unlock()
	if err != nil {
		cl.give(ns)
		return Clone{}, nil, err
	}
	cl.keycloak[ns].serve(db, c.client, ns)
	return Clone{Namespace: ns, Database: db}, func() error {
		cl.keycloak[ns].serve(Database{}, nil, "")
		defer cl.give(ns)
		return srv.DropDatabase(context.Background(), prod.Database)
	}, nil
}

func (c *clones) take(ctx context.Context) (string, error) {
	for {
		c.mu.Lock()
		for _, ns := range CloneNamespaces {
			if !c.taken[ns] {
				c.taken[ns] = true
				c.mu.Unlock()
				return ns, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no clone namespace became free: %w", ctx.Err())
		case <-sleep():
		}
	}
}

func (c *clones) give(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.taken, ns)
}

// clonePG is the clone server: a second server of the system's binaries. CloneOf gives its
// owner role production's password, as a clone's database has.
func (w *world) clonePG() (*PostgresServer, error) { return w.clone.get(StartPostgresServer) }

// clonePostgresAddr is the address of the clone server.
func clonePostgresAddr() (string, error) {
	srv, err := shared.clonePG()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port)), nil
}

// keycloakStandIn plays a clone's Keycloak over HTTP, under /auth as Keycloak 12 serves it:
//   - GET /realms/{realm}/.well-known/openid-configuration: the OIDC discovery document of each
//     realm the clone's database holds, 404 for any other;
//   - POST /realms/master/protocol/openid-connect/token: the admin-cli password grant of the
//     master realm's admin (KeycloakAdminUser: the clone holds production's);
//   - GET /admin/realms: the realms of the clone's database with the themes they name;
//   - GET /admin/serverinfo: the themes of the namespace's Ready Keycloak pods (podThemes, the
//     built-in ones with them); 503 without one.
type keycloakStandIn struct {
	srv *http.Server
	ln  net.Listener

	mu        sync.Mutex
	db        Database
	client    kubernetes.Interface
	namespace string
	tokens    map[string]bool
}

func startKeycloakStandIn() (*keycloakStandIn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &keycloakStandIn{ln: ln, tokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/realms/{realm}/.well-known/openid-configuration", k.discovery)
	mux.HandleFunc("POST /auth/realms/master/protocol/openid-connect/token", k.token)
	mux.HandleFunc("GET /auth/admin/realms", k.realms)
	mux.HandleFunc("GET /auth/admin/serverinfo", k.serverInfo)
	k.srv = &http.Server{Handler: mux}
	go k.srv.Serve(ln)
	return k, nil
}

func (k *keycloakStandIn) port() int { return k.ln.Addr().(*net.TCPAddr).Port }
func (k *keycloakStandIn) close()    { k.srv.Close() }

// serve makes the stand-in the Keycloak of namespace, on db; a zero db serves nothing.
func (k *keycloakStandIn) serve(db Database, client kubernetes.Interface, namespace string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.db, k.client, k.namespace = db, client, namespace
	clear(k.tokens)
}

func (k *keycloakStandIn) database() Database {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.db
}

// discovery answers a realm's OIDC discovery document when the clone's database holds the
// realm (its realm table), as Keycloak does once it started on it.
func (k *keycloakStandIn) discovery(w http.ResponseWriter, r *http.Request) {
	db, realm := k.database(), r.PathValue("realm")
	if db.Database == "" {
		http.NotFound(w, r)
		return
	}
	out, err := db.Run(r.Context(), fmt.Sprintf(`SELECT count(*) FROM realm WHERE name = %s`, quoteLiteral(realm)))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if strings.TrimSpace(out) != "1" {
		http.Error(w, `{"error":"Realm does not exist"}`, http.StatusNotFound)
		return
	}
	issuer := "http://" + r.Host + "/auth/realms/" + realm
	keycloakJSON(w, http.StatusOK, map[string]any{
		"issuer":                 issuer,
		"authorization_endpoint": issuer + "/protocol/openid-connect/auth",
		"token_endpoint":         issuer + "/protocol/openid-connect/token",
		"jwks_uri":               issuer + "/protocol/openid-connect/certs",
	})
}

func (k *keycloakStandIn) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "password" || r.PostForm.Get("client_id") != "admin-cli" {
		keycloakJSON(w, http.StatusBadRequest, map[string]string{"error": "unauthorized_client"})
		return
	}
	if k.database().Database == "" || r.PostForm.Get("username") != KeycloakAdminUser || r.PostForm.Get("password") != KeycloakAdminPassword {
		keycloakJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": "Invalid user credentials"})
		return
	}
	grantToken(w, &k.mu, k.tokens)
}

func (k *keycloakStandIn) authorized(w http.ResponseWriter, r *http.Request) bool {
	ok := validToken(r, &k.mu, k.tokens)
	if !ok {
		keycloakJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
	}
	return ok
}

// realms answers the realms of the clone's database, with the themes each names.
func (k *keycloakStandIn) realms(w http.ResponseWriter, r *http.Request) {
	if !k.authorized(w, r) {
		return
	}
	out, err := k.database().Run(r.Context(), `SELECT name, coalesce(login_theme, ''), coalesce(account_theme, ''),
		coalesce(admin_theme, ''), coalesce(email_theme, '') FROM realm ORDER BY name`)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var list []map[string]any
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimRight(line, "\n"), "|")
		if len(f) != 5 {
			continue
		}
		list = append(list, KeycloakRealm{Name: f[0], LoginTheme: f[1], AccountTheme: f[2], AdminTheme: f[3], EmailTheme: f[4]}.representation())
	}
	keycloakJSON(w, http.StatusOK, list)
}

// serverInfo answers the version and the themes of the clone's Keycloak: those of its Ready
// pods in the namespace.
func (k *keycloakStandIn) serverInfo(w http.ResponseWriter, r *http.Request) {
	if !k.authorized(w, r) {
		return
	}
	k.mu.Lock()
	client, ns := k.client, k.namespace
	k.mu.Unlock()
	pods, err := client.CoreV1().Pods(ns).List(r.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=keycloak"})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	themes, running := podThemes(pods.Items, nil)
	if !running {
		http.Error(w, "no endpoints available for service keycloak", http.StatusServiceUnavailable)
		return
	}
	keycloakJSON(w, http.StatusOK, serverInfo("12.0.4", mergeThemes(KeycloakBuiltinThemes, themes)))
}

func sleep() <-chan time.Time { return time.After(200 * time.Millisecond) }

// KeycloakServes makes the Keycloak stand-in of a clone namespace answer for the realms of db:
// a clone whose Keycloak uses a database of the user's instead of its own.
func (k Kube) KeycloakServes(namespace string, db Database) {
	if s, ok := k.cluster.clones.keycloak[namespace]; ok {
		s.serve(db, k.Client, namespace)
	}
}
