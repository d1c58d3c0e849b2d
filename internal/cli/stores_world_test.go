package cli

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// An unusable backup store is found by the preflight: the upgrade is refused (exit 2) before
// the quiesce, with Keycloak's replicas, the release, the database and the other stores as
// they were.
func TestUpgradeRefusesUnusableStore(t *testing.T) {
	if testing.Short() {
		t.Skip("an upgrade on the simulated cluster")
	}
	w := install13(t)
	statefulSets := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace)
	before, err := statefulSets.Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	r := w.upgrade(t.Context(), t, "--backup-store", "path:/proc/nope")
	if r.code != rollout.ExitRefused {
		t.Errorf("exit %d, want %d\n%s\n%s", r.code, rollout.ExitRefused, r.stdout, r.stderr)
	}
	mustContain(t, r, "Refused: identity was not changed.", `backup-store "path:/proc/nope"`, "cannot write in /proc/nope", "give a writable directory")
	for _, step := range []string{"quiesce", "backup "} {
		if strings.Contains(r.stdout, "\n  "+step) {
			t.Errorf("the run reached the %s step:\n%s", strings.TrimSpace(step), r.stdout)
		}
	}

	after, err := statefulSets.Get(t.Context(), "identity-id-keycloak", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A scale down and up again would leave the replicas as they were but not the generation.
	if *after.Spec.Replicas != *before.Spec.Replicas || after.Generation != before.Generation {
		t.Errorf("Keycloak StatefulSet: %d replicas at generation %d, was %d at generation %d: it was scaled",
			*after.Spec.Replicas, after.Generation, *before.Spec.Replicas, before.Generation)
	}
	cur, err := w.helm.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != 1 || cur.Status != "deployed" {
		t.Errorf("release at revision %d %s, want 1 deployed", cur.Revision, cur.Status)
	}
	if entries, _ := os.ReadDir(w.stores); len(entries) != 0 {
		t.Errorf("the usable store got a backup of a refused run: %v", entries)
	}
	if got := dbContent(t, w.db); got != w.before {
		t.Error("the database changed")
	}
}

// The backup subcommand checks its stores before it dumps: exit 2, nothing in any store.
func TestBackupRefusesUnusableStore(t *testing.T) {
	db := testworld.Postgres(t)
	env := map[string]string{"DATABASE_URL": db.URL()}
	good := t.TempDir()

	r := runCLI(t, env, "backup", "--backup-store=path:"+good, "--backup-store=path:/proc/nope")
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, `backup-store "path:/proc/nope": cannot write in /proc/nope`) ||
		!strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("path:/proc/nope: exit %d, want %d naming the store\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	if entries, _ := os.ReadDir(good); len(entries) != 0 {
		t.Errorf("the usable store got a backup: %v", entries)
	}

	// A registry that refuses the credentials.
	host := cliTestRegistry(t, "ci", "s3cret")
	ref := "oci://" + host + "/backups/keycloak"
	r = runCLI(t, env, "backup", "--backup-store=path:"+good, "--backup-store="+ref, "--allow-plaintext-backup=true",
		"--registry-username=ci", "--registry-password=wrong-pw-71")
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, `backup-store "`+ref+`"`) || !strings.Contains(r.stderr, "registry-password") {
		t.Errorf("registry with wrong credentials: exit %d, want %d naming the store and the credentials\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "wrong-pw-71") {
		t.Errorf("the output shows the registry password:\n%s", r.stderr)
	}
	if entries, _ := os.ReadDir(good); len(entries) != 0 {
		t.Errorf("the usable store got a backup: %v", entries)
	}

	// The right credentials: the check passes and the backup is taken.
	r = runCLI(t, env, "backup", "--backup-store="+ref, "--allow-plaintext-backup=true", "--registry-username=ci", "--registry-password=s3cret")
	if r.code != rollout.ExitOK {
		t.Errorf("registry with the right credentials: exit %d\n%s", r.code, r.stderr)
	}
}

// cliTestRegistry starts go-containerregistry's registry on loopback behind basic auth and
// returns its host:port.
func cliTestRegistry(t *testing.T, user, password string) string {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			rw.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(rw, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
