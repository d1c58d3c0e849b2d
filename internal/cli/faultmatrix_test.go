package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The fault matrix: every row runs the real identity-upgrade binary (so that signals and the
// child processes' environment are real) against its own release and database, injects one
// fault, and checks that the release, the Keycloak replicas and the database end either all as
// before the upgrade or all upgraded, never in between, with the exit code and a reason naming
// the fault.

var built struct {
	once sync.Once
	path string
	err  error
}

// identityUpgrade builds the binary once per test binary.
func identityUpgrade(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "identity-upgrade-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "identity-upgrade")
		out, err := exec.Command("go", "build", "-o", built.path, "../..").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// process is one running identity-upgrade.
type process struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	mu     sync.Mutex
}

// start runs `identity-upgrade upgrade` for w with extra flags; onLog sees every stderr line
// as it comes (the log), with the process, to inject a fault at the right step.
func (w *installed) start(t *testing.T, env []string, onLog func(line string, p *os.Process), extra ...string) *process {
	t.Helper()
	args := []string{"upgrade", "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
		"--db-host", w.db.Host, "--db-port", strconv.Itoa(w.db.Port), "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable", "--recreate-statefulsets", "orphan", "--backup-store", "path:" + w.stores}
	for flag, def := range map[string]string{"--timeout": "90s", "--stability-window": "3s"} {
		if !strings.Contains(strings.Join(extra, " "), flag) {
			args = append(args, flag, def)
		}
	}
	return startBinary(t, append([]string{"KUBECONFIG=" + w.kube.Kubeconfig, "PGPASSWORD=" + w.db.OwnerPassword}, env...), onLog, append(args, extra...)...)
}

// startBinary runs identity-upgrade with args, the test's environment and env; onLog sees every
// stderr line as it comes (the log), with the process.
func startBinary(t *testing.T, env []string, onLog func(line string, p *os.Process), args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(identityUpgrade(t), args...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if onLog != nil {
				onLog(sc.Text(), p.cmd.Process)
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	return p
}

// wait waits for the process and returns its result.
func (p *process) wait(t *testing.T) result {
	t.Helper()
	err := p.cmd.Wait()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := result{code, p.stdout.String(), p.stderr.String()}
	t.Logf("exit %d\n%s", code, r.stdout)
	return r
}

// atStep calls f once, when the log says the step starts.
func atStep(step string, f func(p *os.Process)) func(string, *os.Process) {
	var once sync.Once
	return func(line string, p *os.Process) {
		if strings.HasSuffix(line, "msg=step step="+step) || strings.HasSuffix(line, "msg=step step="+strconv.Quote(step)) {
			once.Do(func() { f(p) })
		}
	}
}

// endState checks that everything is as before the upgrade, or everything upgraded: the
// newest deployed revision's chart, no revision left pending (unless pendingOK), both
// StatefulSets ready with the images of that chart, and the database as seeded.
func (w *installed) endState(t *testing.T, upgraded bool) {
	t.Helper()
	w.endStateOf(t, upgraded, false)
}

func (w *installed) endStateOf(t *testing.T, upgraded, pendingOK bool) {
	t.Helper()
	chart, tag := "2.1.0", "1.3"
	if upgraded {
		chart, tag = "3.0.0", "1.4.0"
	}
	deployed, err := w.helm.Deployed(t.Context(), "identity")
	if err != nil {
		t.Fatal(err)
	}
	if deployed.ChartVersion != chart {
		t.Errorf("deployed revision %d has chart %s, want %s", deployed.Revision, deployed.ChartVersion, chart)
	}
	cur, err := w.helm.Current("identity")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Pending() && !pendingOK {
		t.Errorf("revision %d left %s", cur.Revision, cur.Status)
	}
	for _, name := range []string{"identity-id-keycloak", "identity-postgresql-id"} {
		var sts *appsv1.StatefulSet
		err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			sts, err = w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, name, metav1.GetOptions{})
			return err == nil && sts.Status.ReadyReplicas == *sts.Spec.Replicas && *sts.Spec.Replicas == 1, nil
		})
		if err != nil {
			t.Errorf("StatefulSet %s not at its 1 ready replica: %+v", name, sts.Status)
			continue
		}
		if image := sts.Spec.Template.Spec.Containers[0].Image; name == "identity-id-keycloak" && !strings.HasSuffix(image, ":"+tag) {
			t.Errorf("keycloak image %s, want tag %s", image, tag)
		}
	}
	if got := dbContent(t, w.db); got != w.before {
		t.Error("the database differs from before the upgrade")
	}
}

// pgDumpKilledMidStream is a client directory (for --pg-bin-dir) whose pg_dump sends 64 KiB
// of the real dump and is then killed with SIGKILL, the way an OOM kill or a node loss ends
// it; its pg_restore and psql are the real ones.
func pgDumpKilledMidStream(t *testing.T) []string {
	t.Helper()
	const real = "/usr/lib/postgresql/15/bin"
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in --version) exec %q \"$@\";; esac\n%q \"$@\" | head -c 65536\nkill -9 $$\n", real+"/pg_dump", real+"/pg_dump")
	if err := os.WriteFile(filepath.Join(dir, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"pg_restore", "psql"} {
		if err := os.Symlink(filepath.Join(real, tool), filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--pg-bin-dir", dir}
}

func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault matrix runs whole upgrades on the simulated cluster")
	}
	type row struct {
		name     string
		flags    []string
		env      func(t *testing.T, w *installed) []string
		args     func(t *testing.T) []string // more flags, made for the test
		during   func(t *testing.T, w *installed) func(string, *os.Process)
		exit     int
		reason   string
		upgraded bool
		// run replaces the single run when the row needs more than one.
		run func(t *testing.T, w *installed)
	}
	sigterm := func(p *os.Process) { p.Signal(syscall.SIGTERM) }
	rows := []row{
		{name: "crash-loop", flags: []string{"--set", "fault=crashloop"}, exit: rollout.ExitRolledBack, reason: "exit code 1"},
		{name: "image pull", flags: []string{"--set", "fault=image-pull"}, exit: rollout.ExitRolledBack, reason: "ErrImagePull"},
		{name: "unschedulable", flags: []string{"--set", "fault=unschedulable"}, exit: rollout.ExitRolledBack, reason: "Unschedulable"},
		// Ready for a second, then crashing: helm --atomic reports success here.
		{name: "crash after Ready", flags: []string{"--set", "fault=crash-after-ready", "--set", "faultDelay=1s", "--stability-window", "8s"},
			exit: rollout.ExitRolledBack, reason: "crashed after becoming ready"},
		{name: "chart render error", flags: []string{"--set", "fault=template-error"}, exit: rollout.ExitRefused, reason: "fault template-error"},
		{name: "pre-upgrade hook failure", flags: []string{"--set", "fault=pre-upgrade-hook"}, exit: rollout.ExitRolledBack, reason: "pre-upgrade hooks failed"},
		// The stability window cannot end within the timeout.
		{name: "timeout", flags: []string{"--timeout", "30s", "--stability-window", "29900ms"}, exit: rollout.ExitRolledBack, reason: "Timeout"},
		{name: "SIGTERM during the wait", flags: []string{"--stability-window", "60s"}, exit: rollout.ExitRolledBack, reason: "cancelled",
			during: func(t *testing.T, w *installed) func(string, *os.Process) {
				return atStep("readiness", func(p *os.Process) { time.AfterFunc(time.Second, func() { sigterm(p) }) })
			}},
		// The recovery runs to its end: a second signal does not stop it.
		{name: "SIGTERM during the rollback", flags: []string{"--set", "fault=crashloop"}, exit: rollout.ExitRolledBack, reason: "exit code 1",
			during: func(t *testing.T, w *installed) func(string, *os.Process) { return atStep("rollback", sigterm) }},
		{name: "database unreachable at backup", exit: rollout.ExitRolledBack, reason: "backup",
			during: func(t *testing.T, w *installed) func(string, *os.Process) {
				t.Cleanup(func() { w.db.Run(context.Background(), "ALTER DATABASE "+w.db.Database+" CONNECTION LIMIT -1") })
				// Between the preflight and the backup: stop the run, close the database to
				// its user, go on.
				return atStep("quiesce", func(p *os.Process) {
					p.Signal(syscall.SIGSTOP)
					defer p.Signal(syscall.SIGCONT)
					if _, err := w.db.Run(context.Background(), "ALTER DATABASE "+w.db.Database+" CONNECTION LIMIT 0"); err != nil {
						t.Error(err)
					}
				})
			}},
		{name: "pg_dump killed mid-stream", exit: rollout.ExitRolledBack, reason: "incomplete",
			args: func(t *testing.T) []string { return pgDumpKilledMidStream(t) }},
		{name: "artifact upload failure", flags: []string{"--backup-store", "artifact", "--allow-plaintext-backup"}, exit: rollout.ExitRolledBack,
			reason: "store the backup",
			env: func(t *testing.T, w *installed) []string {
				// act's artifact server, answering every block upload with 500.
				srv := testworld.StartArtifactServer(t)
				srv.SetIntercept(func(rw http.ResponseWriter, r *http.Request) bool {
					if r.URL.Query().Get("comp") == "block" {
						http.Error(rw, "injected failure", http.StatusInternalServerError)
						return true
					}
					return false
				})
				var env []string
				for k, v := range srv.Env() {
					env = append(env, k+"="+v)
				}
				return env
			}},
		{name: "release stuck pending-upgrade", run: func(t *testing.T, w *installed) {
			markPending(t, w)
			if r := w.start(t, nil, nil).wait(t); r.code != rollout.ExitRefused || !strings.Contains(r.stdout+r.stderr, "unlock-pending") {
				t.Fatalf("exit %d, want %d naming unlock-pending", r.code, rollout.ExitRefused)
			}
			w.endStateOf(t, false, true)
			if r := w.start(t, nil, nil, "--unlock-pending").wait(t); r.code != rollout.ExitOK {
				t.Fatalf("with unlock-pending: exit %d\n%s", r.code, r.stderr)
			}
			w.endState(t, true)
		}},
		// No migration, no row count changed: a realm and 692 credentials updated in place
		// while the new version runs. Row counts and the schema state say nothing changed.
		{name: "rows updated in place, then failure", flags: []string{"--set", "fault=crash-after-ready", "--set", "faultDelay=4s", "--stability-window", "15s"},
			exit: rollout.ExitRolledBack, reason: "rows inserted or updated since the backup in credential (692), realm (1)",
			during: func(t *testing.T, w *installed) func(string, *os.Process) {
				return atStep("readiness", func(*os.Process) {
					err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
						sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, "identity-id-keycloak", metav1.GetOptions{})
						return err == nil && sts.Status.ReadyReplicas > 0, nil
					})
					if err == nil {
						_, err = w.db.Run(t.Context(), "SET ROLE "+w.db.Owner+";\n"+
							"UPDATE realm SET not_before = not_before + 1 WHERE name = 'master';\n"+
							"UPDATE credential SET priority = priority + 1;")
					}
					if err != nil {
						t.Errorf("update rows while the new version runs: %v", err)
					}
				})
			}},
		{name: "schema migrated, then failure", flags: []string{"--set", "fault=crash-after-ready", "--set", "faultDelay=4s", "--stability-window", "15s"},
			exit: rollout.ExitRolledBack, reason: "the database was restored from the backup",
			during: func(t *testing.T, w *installed) func(string, *os.Process) {
				// Keycloak 12 migrates the schema as its pod starts, then crashes.
				return atStep("readiness", func(*os.Process) {
					err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
						sts, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, "identity-id-keycloak", metav1.GetOptions{})
						return err == nil && sts.Status.ReadyReplicas > 0, nil
					})
					if err != nil {
						t.Error(err)
						return
					}
					sql, err := os.ReadFile("../../testdata/sql/keycloak-12-migration.sql")
					if err == nil {
						_, err = w.db.Run(t.Context(), "SET ROLE "+w.db.Owner+";\n"+string(sql))
					}
					if err != nil {
						t.Errorf("migrate while the new version runs: %v", err)
					}
				})
			}},
		{name: "a concurrent second run", run: func(t *testing.T, w *installed) {
			first := w.start(t, nil, nil, "--stability-window", "10s")
			err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				leases, err := w.kube.Client.CoordinationV1().Leases(w.kube.Namespace).List(ctx, metav1.ListOptions{})
				return err == nil && len(leases.Items) > 0, nil
			})
			if err != nil {
				t.Fatal("the first run took no lease")
			}
			if r := w.start(t, nil, nil).wait(t); r.code != rollout.ExitRefused || !strings.Contains(r.stdout+r.stderr, "another identity-upgrade run") {
				t.Errorf("second run: exit %d, want %d naming the other run", r.code, rollout.ExitRefused)
			}
			if r := first.wait(t); r.code != rollout.ExitOK {
				t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
			}
			w.endState(t, true)
		}},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := install13(t)
			if tt.run != nil {
				tt.run(t, w)
				return
			}
			var env []string
			if tt.env != nil {
				env = tt.env(t, w)
			}
			var during func(string, *os.Process)
			if tt.during != nil {
				during = tt.during(t, w)
			}
			flags := tt.flags
			if tt.args != nil {
				flags = append(slices.Clone(flags), tt.args(t)...)
			}
			r := w.start(t, env, during, flags...).wait(t)
			if r.code != tt.exit {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.exit, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.reason) {
				t.Errorf("the report does not name the fault (%q)", tt.reason)
			}
			if strings.Contains(r.stdout+r.stderr, w.db.OwnerPassword) {
				t.Error("the output shows the database password")
			}
			w.endState(t, tt.upgraded)
		})
	}
}

// TestSecretsNeverShown runs a failing upgrade as an action, with a database restore, and
// looks for the database password everywhere a run leaves text: stdout (but for its mask),
// stderr, $GITHUB_OUTPUT, the job summary, the artifact names, and the argv of every child
// process (read from /proc/<pid>/cmdline by wrappers of pg_dump, pg_restore and psql).
func TestSecretsNeverShown(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole upgrade on the simulated cluster")
	}
	w := install13(t)
	dir := t.TempDir()
	argv := filepath.Join(dir, "argv")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\n{ printf '%%s: ' %s; tr '\\0' ' ' < /proc/$$/cmdline; echo; } >> %q\nexec %q \"$@\"\n", tool, argv, real)
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	artifacts := testworld.StartArtifactServer(t)
	step := map[string]string{
		"PATH": bin + ":" + os.Getenv("PATH"), "INPUT_RELEASE-NAME": "identity", "INPUT_NAMESPACE": w.kube.Namespace, "INPUT_CHART": chart14,
		"INPUT_KUBECONFIG": string(w.kube.KubeconfigData), "INPUT_DB-HOST": w.db.Host, "INPUT_DB-PORT": strconv.Itoa(w.db.Port),
		"INPUT_DB-NAME": w.db.Database, "INPUT_DB-USER": w.db.Owner, "INPUT_DB-PASSWORD": w.db.OwnerPassword, "INPUT_DB-SSLMODE": "disable",
		"INPUT_RECREATE-STATEFULSETS": "orphan", "INPUT_BACKUP-STORE": "artifact", "INPUT_ALLOW-PLAINTEXT-BACKUP": "true",
		"INPUT_RESTORE-DATABASE": "always", "INPUT_STABILITY-WINDOW": "3s", "INPUT_SET": "fault=crashloop", "INPUT_PG-BIN-DIR": bin,
	}
	maps.Copy(step, artifacts.Env())
	stepEnv, files := actionStep(step).Environ(t)
	env := testworld.EnvList(stepEnv)
	outputs, summary := files.Output, files.Summary
	cmd := exec.Command(identityUpgrade(t))
	// Only what the runner gives a container action: no PGPASSWORD, no KUBECONFIG.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGPASSWORD=") && !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != rollout.ExitRolledBack {
		t.Fatalf("run: %v, want exit %d\n%s\n%s", err, rollout.ExitRolledBack, stdout.String(), stderr.String())
	}
	secret := w.db.OwnerPassword
	mask := "::add-mask::" + secret + "\n"
	if !strings.HasPrefix(stdout.String(), mask) {
		t.Errorf("stdout does not begin by masking the password:\n%.200s", stdout.String())
	}
	texts := map[string]string{"stdout": strings.Replace(stdout.String(), mask, "", 1), "stderr": stderr.String()}
	for name, path := range map[string]string{"$GITHUB_OUTPUT": outputs, "the job summary": summary, "child argv": argv} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		texts[name] = string(data)
	}
	t.Logf("child processes:\n%s", texts["child argv"])
	for _, tool := range []string{"pg_dump:", "pg_restore:"} {
		if !strings.Contains(texts["child argv"], tool) {
			t.Errorf("no %s run was recorded: the check of the argv proves nothing\n%s", tool, texts["child argv"])
		}
	}
	var names []string
	filepath.WalkDir(artifacts.Dir, func(path string, d os.DirEntry, err error) error {
		names = append(names, path)
		return nil
	})
	texts["artifact names"] = strings.Join(names, "\n")
	if !strings.Contains(texts["artifact names"], "identity-r1-") {
		t.Errorf("no artifact was stored: %v", names)
	}
	for name, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the database password", name)
		}
	}
	w.endState(t, false)
}
