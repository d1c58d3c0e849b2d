package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The end-to-end upgrade runs: a real PostgreSQL database seeded with a Keycloak 11 schema, the
// Identity Service 1.3-like release installed against it on the simulated cluster, and
// `identity-upgrade upgrade` to the 1.4-like chart, healthy or with a fault injected.

const (
	chart13 = "../../testdata/charts/identity/2.1.0"
	chart14 = "../../testdata/charts/identity/3.0.0"
)

// installed is one test's release of the 1.3-like chart on its own seeded database.
type installed struct {
	kube   testworld.Kube
	db     testworld.Database
	helm   *helmrelease.Client
	before string // the database content after the seed
	stores string
	// env is added to the environment upgrade runs with (an artifact server's, for one).
	env map[string]string
}

func install13(t *testing.T) *installed {
	t.Helper()
	return installWith(t, func(w *installed) error {
		_, err := w.helm.Install(t.Context(), "identity", chart13, map[string]any{"postgresql": w.db.ChartValues()}, 2*time.Minute)
		return err
	})
}

// installWith gives the test a namespace, a database seeded with Keycloak 11 and a helm client,
// installs the 1.3-like release with install, and creates the image pull Secret the 1.4-like
// chart pulls with, as a user of the real one does first.
func installWith(t *testing.T, install func(w *installed) error) *installed {
	t.Helper()
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	db.ExecFileAsOwner(t, "../../testdata/sql/keycloak-11.sql")
	helm, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: kube.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	w := &installed{kube: kube, db: db, helm: helm, stores: t.TempDir()}
	if err := install(w); err != nil {
		t.Fatal(err)
	}
	if err := kube.CreatePullSecret(t.Context(), "quay-registry-secret"); err != nil {
		t.Fatal(err)
	}
	w.before = dbContent(t, db)
	return w
}

// upgrade runs `identity-upgrade upgrade` to the 1.4-like chart with the given extra flags;
// the password and the kubeconfig come from the environment.
func (w *installed) upgrade(ctx context.Context, t *testing.T, extra ...string) result {
	args := []string{"upgrade", "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
		"--db-host", w.db.Host, "--db-port", strconv.Itoa(w.db.Port), "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable", "--recreate-statefulsets", "orphan", "--backup-store", "path:" + w.stores}
	for flag, def := range map[string]string{"--timeout": "90s", "--stability-window": "3s"} {
		if !slices.Contains(extra, flag) {
			args = append(args, flag, def)
		}
	}
	env := map[string]string{"KUBECONFIG": w.kube.Kubeconfig, "PGPASSWORD": w.db.OwnerPassword}
	maps.Copy(env, w.env)
	var stdout, stderr bytes.Buffer
	code := Run(ctx, append(args, extra...), func(k string) string { return env[k] }, &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("identity-upgrade %s: exit %d\n%s", strings.Join(extra, " "), code, r.stdout)
	return r
}

// expect checks the release's latest revision, its chart, and that both StatefulSets run
// their replicas with the images of that chart.
func (w *installed) expect(t *testing.T, revision int, chartVersion, keycloakTag string) {
	t.Helper()
	cur, err := w.helm.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != revision || cur.Status != "deployed" || cur.ChartVersion != chartVersion {
		t.Errorf("release at revision %d %s chart %s; want %d deployed %s", cur.Revision, cur.Status, cur.ChartVersion, revision, chartVersion)
	}
	for _, name := range []string{"identity-id-keycloak", "identity-postgresql-id"} {
		var sts *appsv1.StatefulSet
		err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			sts, err = w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, name, metav1.GetOptions{})
			return err == nil && sts.Status.ReadyReplicas == *sts.Spec.Replicas && *sts.Spec.Replicas > 0, nil
		})
		if err != nil {
			t.Errorf("StatefulSet %s not ready: %+v", name, sts.Status)
			continue
		}
		if image := sts.Spec.Template.Spec.Containers[0].Image; name == "identity-id-keycloak" && !strings.HasSuffix(image, ":"+keycloakTag) {
			t.Errorf("keycloak image %s, want tag %s", image, keycloakTag)
		}
	}
}

// dbContent is the full content of the database (testworld's digest).
func dbContent(t *testing.T, db testworld.Database) string {
	t.Helper()
	return db.Digest(t).String()
}

func mustContain(t *testing.T, r result, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

func TestUpgradeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end upgrades on the simulated cluster")
	}
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		w := install13(t)
		r := w.upgrade(t.Context(), t)
		if r.code != rollout.ExitOK {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, r, "Upgraded identity: revision 1 → 2", "re-created [identity-postgresql-id]", "backup: "+w.stores+"/identity-r1-")
		w.expect(t, 2, "3.0.0", "1.4.0")
		if got := dbContent(t, w.db); got != w.before {
			t.Error("the database changed during a successful upgrade of pods that do not migrate")
		}
		if strings.Contains(r.stdout+r.stderr, w.db.OwnerPassword) {
			t.Error("the database password appears in the output")
		}
	})
	t.Run("as an action", func(t *testing.T) {
		t.Parallel()
		w := install13(t)
		identity, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		artifacts := testworld.StartArtifactServer(t)
		step := map[string]string{
			"INPUT_RELEASE-NAME": "identity", "INPUT_NAMESPACE": w.kube.Namespace, "INPUT_CHART": chart14,
			"INPUT_KUBECONFIG":            string(w.kube.KubeconfigData),
			"INPUT_DATABASE-URL":          w.db.URL(),
			"INPUT_RECREATE-STATEFULSETS": "orphan", "INPUT_BACKUP-STORE": "artifact",
			"INPUT_BACKUP-ENCRYPTION-RECIPIENTS": identity.Recipient().String(),
			"INPUT_STABILITY-WINDOW":             "3s", "INPUT_SET": "fault=crashloop",
		}
		maps.Copy(step, artifacts.Env())
		env, files := actionStep(step).Environ(t)
		outputs, summary := files.Output, files.Summary
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
		if code != rollout.ExitRolledBack {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, rollout.ExitRolledBack, stdout.String(), stderr.String())
		}
		out, err := os.ReadFile(outputs)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := os.ReadFile(summary)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"result<<", "rolled-back", "previous-revision<<", "revision<<", "backup-sha256<<", "failure-reason<<"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("outputs lack %q:\n%s", want, out)
			}
		}
		for _, want := range []string{"rolled back", "| readiness |", "identity-id-keycloak-0"} {
			if !strings.Contains(string(sum), want) {
				t.Errorf("summary lacks %q:\n%s", want, sum)
			}
		}
		for _, want := range []string{"::add-mask::" + w.db.OwnerPassword, "::group::backup", "::error title=identity-upgrade::"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		// The password was masked first; after that it appears nowhere.
		rest := strings.Replace(stdout.String(), "::add-mask::"+w.db.OwnerPassword, "", 1)
		for name, text := range map[string]string{"stdout": rest, "stderr": stderr.String(), "outputs": string(out), "summary": string(sum)} {
			if strings.Contains(text, w.db.OwnerPassword) {
				t.Errorf("%s shows the database password", name)
			}
		}
		w.expect(t, 3, "2.1.0", "1.3")

		// The backup is retrievable from the artifact store, decrypted with the identity.
		_, location, _ := strings.Cut(string(out), "backup-location<<")
		location = strings.Split(location, "\n")[1]
		if !strings.HasPrefix(location, "artifact:identity-r1-") {
			t.Fatalf("backup-location %q is not an artifact", location)
		}
		other := testworld.Postgres(t)
		restoreEnv := artifacts.Env()
		maps.Copy(restoreEnv, map[string]string{"DATABASE_URL": other.URL(), "IDENTITY_UPGRADE_BACKUP_IDENTITY": identity.String()})
		if r := runCLI(t, restoreEnv, "restore", "--from", location); r.code != rollout.ExitOK {
			t.Fatalf("restore from %s: exit %d\n%s", location, r.code, r.stderr)
		}
		if got := dbContent(t, other); got != w.before {
			t.Error("the database restored from the artifact differs from the one backed up")
		}
	})
	t.Run("dry-run", func(t *testing.T) {
		t.Parallel()
		w := install13(t)
		r := w.upgrade(t.Context(), t, "--dry-run")
		if r.code != rollout.ExitOK {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, r, "Planned: identity would be upgraded from revision 1", "--- change StatefulSet/identity-id-keycloak",
			"+        image: alfresco/alfresco-identity-service:1.4.0", "--- change Secret/identity-id-keycloak-db")
		if strings.Contains(r.stdout, base64.StdEncoding.EncodeToString([]byte(w.db.OwnerPassword))) {
			t.Error("the dry run shows the database password")
		}
		w.expect(t, 1, "2.1.0", "1.3")
		if entries, _ := os.ReadDir(w.stores); len(entries) != 0 {
			t.Errorf("a dry run left a backup: %v", entries)
		}
	})
}

// markPending records what a run killed during its upgrade leaves: a revision 2 with status
// pending-upgrade in helm's storage (a release Secret like helm's, payload and labels), the
// deployed revision 1 untouched.
func markPending(t *testing.T, w *installed) {
	t.Helper()
	secrets := w.kube.Client.CoreV1().Secrets(w.kube.Namespace)
	s, err := secrets.Get(t.Context(), "sh.helm.release.v1.identity.v1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(string(s.Data["release"]))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var rel map[string]any
	if err := json.Unmarshal(data, &rel); err != nil {
		t.Fatal(err)
	}
	rel["info"].(map[string]any)["status"] = "pending-upgrade"
	rel["version"] = 2
	data, err = json.Marshal(rel)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	pending := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.identity.v2", Labels: map[string]string{}},
		Type:       s.Type,
		Data:       map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(buf.Bytes()))},
	}
	for k, v := range s.Labels {
		pending.Labels[k] = v
	}
	pending.Labels["status"], pending.Labels["version"] = "pending-upgrade", "2"
	if _, err := secrets.Create(t.Context(), pending, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cur, err := w.helm.Current("identity"); err != nil || cur.Status != "pending-upgrade" {
		t.Fatalf("release after marking: %+v, %v", cur, err)
	}
}
