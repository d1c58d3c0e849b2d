package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The release's own database: the 1.3-like release installed with its bundled PostgreSQL
// (postgresql.host empty), whose pod the test world answers port-forwards for with a real
// server (testworld.PodPostgresPort). No run is given db-host, db-port or a password: the
// database is reachable only through the API server, the password only from the release's
// Secret.

// dbSecret is the password's place in the test charts: the Secret that Keycloak and the
// bundled PostgreSQL both read.
const dbSecret = "secret/identity-id-keycloak-db:DB_PASSWORD"

// installInCluster installs the 1.3-like release with its bundled PostgreSQL, which the test
// world serves with the test's own seeded database.
func installInCluster(t *testing.T) *installed {
	t.Helper()
	db := testworld.Postgres(t)
	db.ExecFileAsOwner(t, "../../testdata/sql/keycloak-11.sql")
	w := installBundled(t, testworld.Cluster(t), db)
	w.before = dbContent(t, db)
	return w
}

// installBundled installs the 1.3-like release with its bundled PostgreSQL in kube's
// namespace; the test world answers the port-forwards of its pod with db, which the caller
// has seeded. The installed's before is left for the caller.
func installBundled(t *testing.T, kube testworld.Kube, db testworld.Database) *installed {
	t.Helper()
	helm, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: kube.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]any{"postgresql": map[string]any{
		"host": "", "port": testworld.PodPostgresPort, "database": db.Database, "username": db.Owner, "password": db.OwnerPassword,
	}}
	if _, err := helm.Install(t.Context(), "identity", chart13, values, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := kube.CreatePullSecret(t.Context(), "quay-registry-secret"); err != nil {
		t.Fatal(err)
	}
	return &installed{kube: kube, db: db, helm: helm, stores: t.TempDir()}
}

// lineWriter collects what is written and calls on with each complete line.
type lineWriter struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	on      func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		if w.on != nil {
			w.on(string(w.partial[:i]))
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// inCluster runs a subcommand against w's release, the database named only by db-name and
// db-user; onLine sees each log line as it is written (it must not block).
func (w *installed) inCluster(t *testing.T, env map[string]string, onLine func(string), cmd string, extra ...string) result {
	t.Helper()
	args := []string{cmd, "--namespace", w.kube.Namespace, "--db-name", w.db.Database, "--db-user", w.db.Owner, "--db-sslmode", "disable"}
	if cmd != "restore" {
		args = append(args, "--release-name", "identity")
	}
	if cmd == "upgrade" || cmd == "plan" {
		args = append(args, "--chart", chart14, "--recreate-statefulsets", "orphan")
	}
	if cmd == "upgrade" || cmd == "backup" {
		args = append(args, "--backup-store", "path:"+w.stores)
	}
	if env == nil {
		env = map[string]string{"KUBECONFIG": w.kube.Kubeconfig}
	}
	var stdout bytes.Buffer
	stderr := &lineWriter{on: onLine}
	code := Run(t.Context(), append(args, extra...), func(k string) string { return env[k] }, &stdout, stderr)
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("identity-upgrade %s %s: exit %d\n%s", cmd, strings.Join(extra, " "), code, r.stdout)
	return r
}

var reachesPod = regexp.MustCompile(`msg="port-forward reaches pod" pod=(\S+) uid=(\S+)`)

// forwardedPods are the pod UIDs a run's port-forward reached, in order, from its log.
func forwardedPods(log string) []string {
	var uids []string
	for _, m := range reachesPod.FindAllStringSubmatch(log, -1) {
		if len(uids) == 0 || uids[len(uids)-1] != m[2] {
			uids = append(uids, m[2])
		}
	}
	return uids
}

func (w *installed) postgresPodUID(t *testing.T) string {
	t.Helper()
	var uid string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := w.kube.Client.CoreV1().Pods(w.kube.Namespace).Get(ctx, "identity-postgresql-id-0", metav1.GetOptions{})
		if err != nil || pod.DeletionTimestamp != nil {
			return false, nil
		}
		uid = string(pod.UID)
		return true, nil
	})
	if err != nil {
		t.Fatalf("no pod identity-postgresql-id-0: %v", err)
	}
	return uid
}

// TestUpgradeThroughPortForward: the new version changes the schema, then crashes; the
// recovery restores the database through the port-forward, following the PostgreSQL pod that
// the upgrade and then the rollback replaced (the orphan re-create of 2.1.0 <-> 3.0.0), and
// verifies it.
func TestUpgradeThroughPortForward(t *testing.T) {
	if testing.Short() {
		t.Skip("an upgrade on the simulated cluster")
	}
	w := installInCluster(t)
	first := w.postgresPodUID(t)
	relayed := w.kube.PostgresForwards()

	var once sync.Once
	migrate := func(line string) {
		if !strings.HasSuffix(line, "msg=step step=readiness") {
			return
		}
		once.Do(func() {
			go func() {
				// Keycloak 12 migrates the schema as its pod starts, then crashes.
				err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
					sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, "identity-id-keycloak", metav1.GetOptions{})
					return err == nil && sts.Status.ReadyReplicas > 0, nil
				})
				if err == nil {
					var sql []byte
					if sql, err = os.ReadFile("../../testdata/sql/keycloak-12-migration.sql"); err == nil {
						_, err = w.db.Run(t.Context(), "SET ROLE "+w.db.Owner+";\n"+string(sql))
					}
				}
				if err != nil {
					t.Errorf("migrate while the new version runs: %v", err)
				}
			}()
		})
	}
	r := w.inCluster(t, nil, migrate, "upgrade", "--db-port-forward", "auto", "--db-password-from", dbSecret,
		"--set", "fault=crash-after-ready", "--set", "faultDelay=4s", "--stability-window", "15s", "--timeout", "90s")
	if r.code != rollout.ExitRolledBack {
		t.Fatalf("exit %d, want %d\n%s\n%s", r.code, rollout.ExitRolledBack, r.stdout, r.stderr)
	}
	mustContain(t, r, "the database was restored from the backup", "re-created [identity-postgresql-id]")
	if !strings.Contains(r.stderr, `msg="db-port-forward auto: the release's PostgreSQL" target=statefulset/identity-postgresql-id:5432`) {
		t.Error("auto did not find the release's PostgreSQL StatefulSet")
	}
	w.endState(t, false)

	// The run reached the database only through the forward, and followed the pod.
	if w.kube.PostgresForwards() <= relayed {
		t.Error("no connection went through the cluster's port-forward")
	}
	pods := forwardedPods(r.stderr)
	last := w.postgresPodUID(t)
	t.Logf("the forward reached the pods of uid %v", pods)
	if len(pods) < 3 || pods[0] != first || pods[len(pods)-1] != last || first == last {
		t.Errorf("the forward reached pods %v; want the first (%s), the one the upgrade made, and the one the rollback made (%s)", pods, first, last)
	}
	if strings.Contains(r.stdout+r.stderr, w.db.OwnerPassword) {
		t.Error("the output shows the database password read from the Secret")
	}
}

// TestSubcommandsThroughPortForward: plan, backup and restore through a Service and a pod.
func TestSubcommandsThroughPortForward(t *testing.T) {
	if testing.Short() {
		t.Skip("commands on the simulated cluster")
	}
	w := installInCluster(t)
	if r := w.inCluster(t, nil, nil, "plan", "--db-port-forward", "service/identity-postgresql-id", "--db-password-from", dbSecret); r.code != rollout.ExitOK {
		t.Fatalf("plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r := w.inCluster(t, nil, nil, "backup", "--db-port-forward", "pod/identity-postgresql-id-0:postgresql", "--db-password-from", dbSecret)
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	bundle := lines[len(lines)-1]

	w.db.Exec(t, "SET ROLE "+w.db.Owner+"; UPDATE realm SET not_before = not_before + 1")
	if dbContent(t, w.db) == w.before {
		t.Fatal("the change did not change the database")
	}
	r = w.inCluster(t, nil, nil, "restore", "--from", bundle, "--db-port-forward", "service/identity-postgresql-id:postgresql", "--db-password-from", dbSecret)
	if r.code != rollout.ExitOK {
		t.Fatalf("restore: exit %d\n%s", r.code, r.stderr)
	}
	if dbContent(t, w.db) != w.before {
		t.Error("the database restored through the forward differs from the one backed up")
	}
	if r := w.inCluster(t, nil, nil, "plan", "--db-port-forward", "service/identity-postgresql"); r.code != rollout.ExitRefused ||
		!strings.Contains(r.stderr, "db-port-forward service/identity-postgresql: service/identity-postgresql does not exist") {
		t.Errorf("a misnamed Service: exit %d\n%s", r.code, r.stderr)
	}
}

// TestActionMasksThePasswordFromTheSecret: as an action, the password read through
// db-password-from is masked, and appears nowhere else: not in the log, the outputs or the
// job summary.
func TestActionMasksThePasswordFromTheSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("a run on the simulated cluster")
	}
	w := installInCluster(t)
	env, files := actionStep(map[string]string{
		"INPUT_RELEASE-NAME": "identity", "INPUT_NAMESPACE": w.kube.Namespace, "INPUT_CHART": chart14,
		"INPUT_KUBECONFIG": string(w.kube.KubeconfigData), "INPUT_DB-PORT-FORWARD": "auto", "INPUT_DB-PASSWORD-FROM": dbSecret,
		"INPUT_DB-NAME": w.db.Database, "INPUT_DB-USER": w.db.Owner, "INPUT_DB-SSLMODE": "disable",
		"INPUT_RECREATE-STATEFULSETS": "orphan", "INPUT_BACKUP-STORE": "path:" + w.stores, "INPUT_DRY-RUN": "true",
	}).Environ(t)
	outputs, summary := files.Output, files.Summary
	var stdout, stderr bytes.Buffer
	if code := Run(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr); code != rollout.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	mask := "::add-mask::" + w.db.OwnerPassword + "\n"
	if !strings.Contains(stdout.String(), mask) {
		t.Error("the password read from the Secret was not masked")
	}
	texts := map[string]string{"stdout": strings.Replace(stdout.String(), mask, "", 1), "stderr": stderr.String()}
	for name, path := range map[string]string{"outputs": outputs, "summary": summary} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		texts[name] = string(data)
	}
	for name, text := range texts {
		if strings.Contains(text, w.db.OwnerPassword) {
			t.Errorf("%s shows the password read from the Secret", name)
		}
	}
	if !strings.Contains(stderr.String(), "port-forward reaches pod") {
		t.Error("the dry run did not reach the database through the forward")
	}
}

// readmeRole is the Role of the README's Permissions section.
func readmeRole(t *testing.T) rbacv1.Role {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(readme), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.Contains(block, "kind: Role\nmetadata: {name: identity-upgrade,") {
			continue
		}
		var role rbacv1.Role
		if err := yaml.UnmarshalStrict([]byte(block), &role); err != nil {
			t.Fatalf("the README's Role: %v", err)
		}
		return role
	}
	t.Fatal("the README has no Role named identity-upgrade")
	return rbacv1.Role{}
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as a new ServiceAccount
// bound to rules, with a token from the TokenRequest API.
func serviceAccountKubeconfig(t *testing.T, kube testworld.Kube, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	token := kube.ServiceAccountToken(t, name, rules)
	conf, err := clientcmd.Load(kube.KubeconfigData)
	if err != nil {
		t.Fatal(err)
	}
	current := conf.Contexts[conf.CurrentContext]
	conf.AuthInfos = map[string]*clientcmdapi.AuthInfo{name: {Token: token}}
	current.AuthInfo = name
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*conf, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPortForwardNeedsItsPermission: the test world's API server authorizes with RBAC. With
// the README's Role the plan goes through the forward; without its pods/portforward rule the
// upgrade is refused at the preflight (exit 2), naming the rule, and nothing changes.
func TestPortForwardNeedsItsPermission(t *testing.T) {
	if testing.Short() {
		t.Skip("commands on the simulated cluster")
	}
	w := installInCluster(t)
	role := readmeRole(t)
	full := serviceAccountKubeconfig(t, w.kube, "readme-role", role.Rules)
	var without []rbacv1.PolicyRule
	for _, rule := range role.Rules {
		rule.Resources = slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool { return r == "pods/portforward" })
		if len(rule.Resources) > 0 {
			without = append(without, rule)
		}
	}
	lacking := serviceAccountKubeconfig(t, w.kube, "no-portforward", without)

	args := []string{"--db-port-forward", "auto", "--db-password-from", dbSecret}
	if r := w.inCluster(t, map[string]string{"KUBECONFIG": full}, nil, "plan", args...); r.code != rollout.ExitOK {
		t.Fatalf("plan with the README's Role: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r := w.inCluster(t, map[string]string{"KUBECONFIG": lacking}, nil, "upgrade", args...)
	if r.code != rollout.ExitRefused {
		t.Fatalf("upgrade without pods/portforward: exit %d, want %d\n%s\n%s", r.code, rollout.ExitRefused, r.stdout, r.stderr)
	}
	for _, want := range []string{"may not create pods/portforward in namespace " + w.kube.Namespace, "add to its Role:",
		"resources: [pods/portforward]\n  verbs: [create]", "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, r.stderr)
		}
	}
	w.expect(t, 1, "2.1.0", "1.3")
	if entries, _ := os.ReadDir(w.stores); len(entries) != 0 {
		t.Errorf("a refused run left a backup: %v", entries)
	}
}
