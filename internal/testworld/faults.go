package testworld

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Components of a simulated cluster that a test can kill and start again, as a node agent or
// an API server crashes and comes back in the field. The kwok controller serves port-forward,
// exec and logs, like a kubelet.
const (
	KwokController = "kwok-controller"
	KubeAPIServer  = "kube-apiserver"
	// kubeScheduler is restarted with the API server (see Restart), not alone.
	kubeScheduler = "kube-scheduler"
)

// DedicatedWorld is a PostgreSQL server and a simulated cluster of one test's own, for faults
// that would disturb the other tests of the binary: killing a component of the cluster or
// restarting the server. Port-forwards to PodPostgresPort of its pods reach Server.
type DedicatedWorld struct {
	Server  *PostgresServer
	Cluster *KubeCluster
}

// Dedicated starts a DedicatedWorld, stopped when the test ends. It costs a cluster start
// (seconds) and a server start: share one among a test's subtests.
func Dedicated(t testing.TB) *DedicatedWorld {
	t.Helper()
	srv, err := StartPostgresServer()
	if err != nil {
		t.Fatalf("testworld: dedicated postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("testworld: stop dedicated postgres: %v", err)
		}
	})
	c, err := startCluster(func() (string, error) { return net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port)), nil },
		clusterOptions{survivesAPIServerRestart: true})
	if err != nil {
		t.Fatalf("testworld: dedicated cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("testworld: stop dedicated cluster: %v", err)
		}
	})
	return &DedicatedWorld{Server: srv, Cluster: c}
}

// Namespace gives the test a namespace of its own in the dedicated cluster.
func (d *DedicatedWorld) Namespace(t testing.TB) Kube {
	t.Helper()
	ns := fmt.Sprintf("t%d-%s", d.Cluster.namespaces.Add(1), strings.Trim(strings.ReplaceAll(sanitize(t.Name(), 40), "_", "-"), "-"))
	kube, err := d.Cluster.CreateNamespace(t.Context(), ns)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	return kube
}

// Database gives the test a database of its own on the dedicated server.
func (d *DedicatedWorld) Database(t testing.TB) Database {
	t.Helper()
	return d.Server.testDatabase(t)
}

// Restart kills a component of the cluster with SIGKILL, leaves it down for down, then starts
// it again with the command line, working directory and environment the dead process had
// (read from /proc), its output appended to the component's log, and waits until it accepts
// connections on its port again. kwokctl --runtime binary keeps each component's pid in
// <workdir>/clusters/<name>/pids/<component>.pid; the new pid is written there, so that
// deleting the cluster stops the new process.
//
// The API server's restart restarts the scheduler once the API server serves again: a
// scheduler whose watches broke while a binding was in flight can keep a corrupted cache ("Pod
// updated on a different node than previously added to. Scheduler cache is corrupted") and
// never schedule a new pod of the namespace again; a control plane's kubelet restarts it when
// its health check fails, and a simulated cluster has none.
func (c *KubeCluster) Restart(component string, down time.Duration) error {
	if err := c.restart(component, down); err != nil || component != KubeAPIServer {
		return err
	}
	return c.restart(kubeScheduler, 0)
}

func (c *KubeCluster) restart(component string, down time.Duration) error {
	dir := filepath.Join(c.workdir, "clusters", c.name)
	pidFile := filepath.Join(dir, "pids", component+".pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("restart %s: pid file: %w", component, err)
	}
	args, err := procList(pid, "cmdline")
	if err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	env, err := procList(pid, "environ")
	if err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	port := servingPort(args)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("restart %s: kill %d: %w", component, pid, err)
	}
	if err := waitGone(pid, 30*time.Second); err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	if component == KwokController {
		// The kwok controller holds each node's Lease under an identity made anew by every
		// process; a new one would wait the lease duration out (minutes) before it manages
		// the nodes again. A kubelet keeps its node's identity: the dead holder's leases go.
		if err := c.releaseNodeLeases(); err != nil {
			return fmt.Errorf("restart %s: %w", component, err)
		}
	}
	time.Sleep(down)

	logf, err := os.OpenFile(filepath.Join(dir, "logs", component+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = cwd, env, logf, logf
	// Its own session, as kwokctl starts it: a signal to the test's process group does not
	// reach it, and kwokctl delete cluster stops it through its pid file.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	go cmd.Wait() // reaps it when the cluster is deleted
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	if port == 0 {
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart %s: not listening on port %d after a minute: %w", component, port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// releaseNodeLeases deletes the Leases of the kwok nodes.
func (c *KubeCluster) releaseNodeLeases() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range NodeCount {
		err := c.client.CoordinationV1().Leases("kube-node-lease").Delete(ctx, fmt.Sprintf("kwok-node-%d", i), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("release the lease of node kwok-node-%d: %w", i, err)
		}
	}
	return nil
}

// procList reads a NUL-separated file of /proc/<pid>: cmdline or environ.
func procList(pid int, file string) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range bytes.Split(bytes.TrimRight(data, "\x00"), []byte{0}) {
		out = append(out, string(s))
	}
	if len(out) == 0 || out[0] == "" {
		return nil, fmt.Errorf("/proc/%d/%s is empty", pid, file)
	}
	return out, nil
}

// servingPort is the port a component's command line says it serves on: the API server's
// --secure-port, the kwok controller's --node-port; 0 when it says neither.
func servingPort(args []string) int {
	for _, a := range args {
		for _, flag := range []string{"--secure-port=", "--node-port="} {
			if v, ok := strings.CutPrefix(a, flag); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
	}
	return 0
}

// waitGone waits until a killed process is gone: no longer in /proc, or a zombie that its
// parent has not reaped yet.
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		// The state follows the command name in parentheses: "pid (comm) S ...".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still runs %s after SIGKILL", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops the server the way `pg_ctl restart -m fast` does (SIGINT: every session is
// ended, as a PostgreSQL pod's restart or failover ends them), then starts it again on the
// same port and data directory and waits until it accepts connections.
func (s *PostgresServer) Restart() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("restart postgres: not running")
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		return errors.New("restart postgres: it did not stop within 30s")
	}
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	if err := s.start(filepath.Join(s.dir, "data"), cred); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// Sessions lists the sessions on the server whose application_name starts with prefix:
// "pid application_name state", one per session, read as the superuser.
func (s *PostgresServer) Sessions(ctx context.Context, prefix string) ([]string, error) {
	out, err := psql(ctx, s.psqlDir, "127.0.0.1", s.port, "postgres", pgSuperUser, s.superPassword,
		fmt.Sprintf(`SELECT pid || ' ' || application_name || ' ' || coalesce(state, '') FROM pg_stat_activity
			WHERE application_name LIKE '%s%%' AND pid <> pg_backend_pid() ORDER BY pid`, strings.ReplaceAll(prefix, "'", "''")))
	if err != nil {
		return nil, err
	}
	var sessions []string
	for line := range strings.Lines(out) {
		if line = strings.TrimSpace(line); line != "" {
			sessions = append(sessions, line)
		}
	}
	return sessions, nil
}

// CPU is the CPU time (user and system) the named components of the cluster have used so far,
// together: what a port-forward costs the control plane (kube-apiserver) and the node agent
// (kwok-controller) is the difference over a run.
func (c *KubeCluster) CPU(components ...string) (time.Duration, error) {
	var total time.Duration
	for _, component := range components {
		data, err := os.ReadFile(filepath.Join(c.workdir, "clusters", c.name, "pids", component+".pid"))
		if err != nil {
			return 0, err
		}
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(data)) + "/stat")
		if err != nil {
			return 0, err
		}
		// utime and stime are fields 14 and 15, counted after the command name in parentheses.
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 13 {
			return 0, fmt.Errorf("%s: unexpected /proc stat", component)
		}
		for _, f := range fields[11:13] {
			ticks, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: /proc stat: %w", component, err)
			}
			total += time.Duration(ticks) * time.Second / clockTicks
		}
	}
	return total, nil
}

// clockTicks is USER_HZ, the unit of /proc's CPU times on Linux.
const clockTicks = 100

// HoldLock opens a session on the test's database, as its owner or (super) the superuser,
// named app (its application_name), and holds a lock of mode on table until the test ends, as
// a client left running would (Keycloak's JDBC driver names itself "PostgreSQL JDBC Driver").
// It returns the session's pid.
func (p Database) HoldLock(t testing.TB, super bool, app, table, mode string) int {
	t.Helper()
	name, password := p.Owner, p.OwnerPassword
	if super {
		name, password = p.SuperUser, p.SuperPassword
	}
	cmd := exec.Command(filepath.Join(p.PsqlDir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", name, "-d", p.Database)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGAPPNAME="+app)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // psql ends at the end of its input, and its transaction with it
		cmd.Wait()
	})
	// The pid comes back once the lock is held: psql runs each statement as it reads it.
	fmt.Fprintf(stdin, "BEGIN;\nLOCK TABLE %s IN %s MODE;\nSELECT pg_backend_pid();\n", table, mode)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("hold a lock on %s: %v", table, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("hold a lock on %s: %q is not a pid", table, line)
	}
	return pid
}
