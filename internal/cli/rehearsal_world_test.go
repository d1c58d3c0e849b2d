package cli

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/kubelock"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The rehearsal on a clone, for real: production's release with its bundled PostgreSQL (the
// shared server through the port-forward), the clone in one of the test world's clone
// namespaces, whose PostgreSQL is a database of its own on the clone server. The simulated
// Keycloak 12 migrates whichever database its pod's release points at, once the pod is
// Ready; a migration that fails makes its pod crash, as Keycloak's start does.

// keycloak12On plays Keycloak 12 on the pods of namespace: each 1.4 pod, once Ready, runs the
// Keycloak 12 migration on db, once; when the migration fails, the pod crashes after its
// Ready (the fault label of the test charts) and keeps crashing. failed reports whether one
// did.
func keycloak12On(t *testing.T, kube testworld.Kube, namespace string, db testworld.Database) (failed func() bool) {
	t.Helper()
	sql, err := os.ReadFile("../../testdata/sql/keycloak-12-migration.sql")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var broke bool
	done := map[types.UID]bool{}
	go func() {
		for t.Context().Err() == nil {
			pods, err := kube.Client.CoreV1().Pods(namespace).List(t.Context(), metav1.ListOptions{})
			if err == nil {
				for _, p := range pods.Items {
					if done[p.UID] || !podReady(&p) || len(p.Spec.Containers) == 0 || !strings.HasSuffix(p.Spec.Containers[0].Image, ":1.4.0") {
						continue
					}
					done[p.UID] = true
					if _, err := db.Run(t.Context(), "SET ROLE "+db.Owner+";\n"+string(sql)); err != nil {
						t.Logf("Keycloak 12 in %s: the migration failed, the pod crashes: %v", namespace, err)
						mu.Lock()
						broke = true
						mu.Unlock()
						patch := []byte(`{"metadata":{"labels":{"identity-upgrade.test/fault":"crash-after-ready"}}}`)
						if _, err := kube.Client.CoreV1().Pods(namespace).Patch(t.Context(), p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
							t.Errorf("crash the pod: %v", err)
						}
					}
				}
			}
			select {
			case <-t.Context().Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		return broke
	}
}

// rehearse runs a subcommand with the rehearsal against w's in-cluster release, its clone in
// clone's namespace.
func (w *installed) rehearse(t *testing.T, cmd string, clone testworld.Clone, extra ...string) result {
	t.Helper()
	args := append([]string{"--db-port-forward", "auto", "--db-password-from", dbSecret, "--rehearsal-namespace", clone.Namespace,
		"--stability-window", "10s", "--timeout", "90s"}, extra...)
	return w.inCluster(t, nil, nil, cmd, args...)
}

// gone checks that the clone's namespace is gone.
func gone(t *testing.T, kube testworld.Kube, namespace string) {
	t.Helper()
	if _, err := kube.Client.CoreV1().Namespaces().Get(t.Context(), namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the clone's namespace %s is still there (%v)", namespace, err)
	}
}

// TestRehearsalRefusesAMigrationThatFailsOnTheData: production holds a role Keycloak 12's
// migration collides with (a customer's own delete-account role of the account client: the
// migration adds one, under a unique constraint). The rehearsal's Keycloak fails to migrate the
// clone and crashes; the upgrade is refused before any downtime, production's release,
// replicas and database untouched, the clone gone.
func TestRehearsalRefusesAMigrationThatFailsOnTheData(t *testing.T) {
	if testing.Short() {
		t.Skip("a rehearsal on the simulated cluster")
	}
	t.Parallel()
	w := installInCluster(t)
	w.db.Exec(t, `SET ROLE `+w.db.Owner+`;
		INSERT INTO keycloak_role (id, client_realm_constraint, client_role, description, name, realm_id, client)
		SELECT 'customer-delete-account', c.id, true, 'made by hand', 'delete-account', c.realm_id, c.id
		FROM client c WHERE c.client_id = 'account' ORDER BY c.realm_id LIMIT 1`)
	before := dbContent(t, w.db)
	clone := w.kube.CloneOf(t, w.db)
	failed := keycloak12On(t, w.kube, clone.Namespace, clone.Database)

	r := w.rehearse(t, "upgrade", clone, "--rehearse-first")
	if r.code != rollout.ExitRefused {
		t.Fatalf("exit %d, want %d (refused: the rehearsal failed)\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	if !failed() {
		t.Fatal("the clone's Keycloak never failed its migration: the test proves nothing")
	}
	mustContain(t, r, "rehearsal: FAILED on a clone in namespace "+clone.Namespace, "the rehearsal on a clone failed")
	gone(t, w.kube, clone.Namespace)
	w.expect(t, 1, "2.1.0", "1.3")
	if got := dbContent(t, w.db); got != before {
		t.Error("production's database changed")
	}
	for _, step := range []string{"quiesce", "backup ", "upgrade "} {
		if strings.Contains(r.stdout, "\n  "+step) {
			t.Errorf("the refused run took step %q", step)
		}
	}
}

// TestRehearsalThenUpgrade: the rehearsal passes (Keycloak 12 migrated the clone, every realm's
// discovery answered), then the real upgrade runs; both migration times are reported, and
// production ends with what the clone started from plus the migration: the clone's content.
func TestRehearsalThenUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("a rehearsal and an upgrade on the simulated cluster")
	}
	t.Parallel()
	w := installInCluster(t)
	clone := w.kube.CloneOf(t, w.db)
	keycloak12On(t, w.kube, clone.Namespace, clone.Database)
	keycloak12On(t, w.kube, w.kube.Namespace, w.db)

	r := w.rehearse(t, "upgrade", clone, "--rehearse-first")
	if r.code != rollout.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", r.code, r.stderr)
	}
	mustContain(t, r, "rehearsal: passed on a clone in namespace "+clone.Namespace, "2 changesets applied (86 → 88)",
		"OIDC discovery of", "Upgraded identity: revision 1 → 2", "downtime: Keycloak down ", "; the clone's migration predicted ")
	gone(t, w.kube, clone.Namespace)
	w.expect(t, 2, "3.0.0", "1.4.0")
	if prod, cloned := dbContent(t, w.db), dbContent(t, clone.Database); prod != cloned {
		t.Errorf("production after the upgrade %s, the clone after the rehearsal %s: want the same content", prod, cloned)
	}
}

// TestRehearsalChecksTheThemes: production's realm alfresco names a login theme, acme, that
// someone copied into the running pod by hand: the target's Keycloak does not have it. The
// rehearsal logs in to the clone's admin API (production's admin, whose credentials the clone's
// data holds) and fails naming the theme, before any downtime; with missing-theme warn it
// passes with the warning. Production is untouched both times.
func TestRehearsalChecksTheThemes(t *testing.T) {
	if testing.Short() {
		t.Skip("two rehearsals on the simulated cluster")
	}
	t.Parallel()
	w := installInCluster(t)
	w.db.Exec(t, `SET ROLE `+w.db.Owner+`; UPDATE realm SET login_theme = 'acme' WHERE name = 'alfresco'`)
	before := dbContent(t, w.db)
	clone := w.kube.CloneOf(t, w.db)
	keycloak12On(t, w.kube, clone.Namespace, clone.Database)
	env := map[string]string{"KUBECONFIG": w.kube.Kubeconfig, "KEYCLOAK_ADMIN_PASSWORD": testworld.KeycloakAdminPassword}
	rehearse := func(extra ...string) result {
		return w.inCluster(t, env, nil, "rehearse", append([]string{"--db-port-forward", "auto", "--db-password-from", dbSecret,
			"--rehearsal-namespace", clone.Namespace, "--stability-window", "5s", "--timeout", "90s",
			"--chart", chart14, "--keycloak-admin-user", testworld.KeycloakAdminUser}, extra...)...)
	}

	r := rehearse()
	if r.code != rollout.ExitRolledBack {
		t.Fatalf("exit %d, want %d (the rehearsal failed)\n%s", r.code, rollout.ExitRolledBack, r.stderr)
	}
	mustContain(t, r, "rehearsal: FAILED on a clone in namespace "+clone.Namespace, `realm alfresco`, `acme`, "missing-theme")
	waitGone(t, w.kube, clone.Namespace)

	r = rehearse("--missing-theme", "warn")
	if r.code != rollout.ExitOK {
		t.Fatalf("missing-theme warn: exit %d, want 0\n%s", r.code, r.stderr)
	}
	mustContain(t, r, "rehearsal: passed on a clone in namespace "+clone.Namespace, "admin API answered; Keycloak 12.0.4 lacks 1", `login theme "acme"`, "(missing-theme: warn)")
	waitGone(t, w.kube, clone.Namespace)
	w.expect(t, 1, "2.1.0", "1.3")
	if got := dbContent(t, w.db); got != before {
		t.Error("production's database changed")
	}
}

// TestRehearsalKilledThenRecovered: a rehearse killed (SIGKILL) while its clone runs leaves the
// scratch namespace in its journal; recover deletes it; production is untouched.
func TestRehearsalKilledThenRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("a killed rehearsal on the simulated cluster")
	}
	t.Parallel()
	w := installInCluster(t)
	before := dbContent(t, w.db)
	clone := w.kube.CloneOf(t, w.db)
	keycloak12On(t, w.kube, clone.Namespace, clone.Database)

	env := []string{"KUBECONFIG=" + w.kube.Kubeconfig}
	args := []string{"rehearse", "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
		"--db-port-forward", "auto", "--db-password-from", dbSecret, "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable", "--rehearsal-namespace", clone.Namespace, "--stability-window", "10s", "--timeout", "90s"}
	p := startBinary(t, env, atStep("rehearsal: start Keycloak", func(p *os.Process) { p.Kill() }), args...)
	if r := p.wait(t); r.code != -1 {
		t.Fatalf("exit %d, want killed", r.code)
	}
	if _, err := w.kube.Client.CoreV1().Namespaces().Get(t.Context(), clone.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("the killed rehearsal left no namespace to clean: %v", err)
	}
	// A killed run's Lease stays until it expires (2 minutes); its error message says to
	// delete it when that run is gone.
	if err := w.kube.Client.CoordinationV1().Leases(w.kube.Namespace).Delete(t.Context(), kubelock.LeaseName("identity"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := w.inCluster(t, nil, nil, "recover", "--db-port-forward", "auto", "--db-password-from", dbSecret)
	if rec.code != rollout.ExitRolledBack {
		t.Fatalf("recover: exit %d, want 1\n%s", rec.code, rec.stderr)
	}
	waitGone(t, w.kube, clone.Namespace)
	w.expect(t, 1, "2.1.0", "1.3")
	if got := dbContent(t, w.db); got != before {
		t.Error("production's database changed")
	}
}

// waitGone waits (a little) for a namespace in deletion to go.
func waitGone(t *testing.T, kube testworld.Kube, namespace string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.Client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		gone(t, kube, namespace)
	}
}

// pointsAt is the database a Keycloak pod's variables name (DB_DATABASE, a value or from a
// Secret).
func pointsAt(ctx context.Context, kube testworld.Kube, pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			if e.Name != "DB_DATABASE" {
				continue
			}
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				return e.Value
			}
			s, err := kube.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, e.ValueFrom.SecretKeyRef.Name, metav1.GetOptions{})
			if err != nil {
				return "(unreadable: " + err.Error() + ")"
			}
			return string(s.Data[e.ValueFrom.SecretKeyRef.Key])
		}
	}
	return ""
}

// TestRehearsalOnTheUsersDatabase: production's database is not the release's bundled one
// (database-url), so the clone's Keycloak must not be left pointing at it: it gets the scratch
// database the user gave (rehearsal-database-url), which the backup is restored into and
// Keycloak 12 migrates, and which the clone's Keycloak serves its realms from.
func TestRehearsalOnTheUsersDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("a rehearsal on the simulated cluster")
	}
	t.Parallel()
	w := install13(t)
	scratch := testworld.Postgres(t)
	ns := w.kube.CloneOf(t, w.db).Namespace
	w.kube.KeycloakServes(ns, scratch)
	sql, err := os.ReadFile("../../testdata/sql/keycloak-12-migration.sql")
	if err != nil {
		t.Fatal(err)
	}
	var migrated sync.Once
	go func() {
		for t.Context().Err() == nil {
			pods, err := w.kube.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
			for i := 0; err == nil && i < len(pods.Items); i++ {
				p := &pods.Items[i]
				if !podReady(p) || !strings.HasSuffix(p.Spec.Containers[0].Image, ":1.4.0") {
					continue
				}
				migrated.Do(func() {
					// Keycloak migrates the database its variables name.
					if at := pointsAt(t.Context(), w.kube, p); at != scratch.Database {
						t.Errorf("the clone's Keycloak points at database %q, not the scratch database %q", at, scratch.Database)
						return
					}
					if _, err := scratch.Run(t.Context(), "SET ROLE "+scratch.Owner+";\n"+string(sql)); err != nil {
						t.Errorf("migrate the scratch database: %v", err)
					}
				})
			}
			select {
			case <-t.Context().Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	r := w.upgrade(t.Context(), t, "--rehearse-first", "--rehearsal-namespace", ns, "--rehearsal-database-url", scratch.URL())
	if r.code != rollout.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", r.code, r.stderr)
	}
	mustContain(t, r, "rehearsal: passed on a clone in namespace "+ns, "2 changesets applied (86 → 88)")
	waitGone(t, w.kube, ns)
	if got := strings.TrimSpace(scratch.Exec(t, `SELECT count(*) FROM databasechangelog`)); got != "88" {
		t.Errorf("the scratch database has %s changesets, want 88 (Keycloak 12 migrated it)", got)
	}
	w.expect(t, 2, "3.0.0", "1.4.0")
}
