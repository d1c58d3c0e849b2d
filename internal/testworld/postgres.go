package testworld

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Database is one test's database on one of the binary's PostgreSQL servers: the shared one
// (Postgres) or that of another major (PostgresMajor). The server listens on 127.0.0.1 only,
// with scram-sha-256 password authentication on TCP.
type Database struct {
	Host string
	Port int
	// Database is created for the test, owned by Owner, and dropped when the test ends.
	Database string
	// SuperUser can do anything; tests use it to arrange fixtures and faults.
	SuperUser     string
	SuperPassword string
	// Owner is a non-superuser role that owns Database, as Keycloak's database user does.
	Owner         string
	OwnerPassword string
	// BinDir holds the server's own binaries: initdb, pg_ctl and postgres, and for the shared
	// server (the system's) also psql, pg_dump and pg_restore. The other majors' servers come
	// without client programs: ClientBinDir names the client tools tests can use.
	BinDir string
	// PsqlDir holds the psql that Exec and Run use: the system's, whose plain SQL works
	// with every major the test world offers.
	PsqlDir string
	// Major is the server's major version.
	Major int
	// ServerPID is the server's process id.
	ServerPID int
}

// URL returns a connection URL for the database owner.
func (p Database) URL() string { return p.url(p.Owner, p.OwnerPassword) }

// SuperURL returns a connection URL for the superuser.
func (p Database) SuperURL() string { return p.url(p.SuperUser, p.SuperPassword) }

func (p Database) url(name, password string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(name, password),
		Host:     fmt.Sprintf("%s:%d", p.Host, p.Port),
		Path:     "/" + p.Database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Exec runs sql in the test's database as the superuser through psql, stopping at the first
// error, and returns what psql printed (unaligned, tuples only).
func (p Database) Exec(t testing.TB, sql string) string {
	t.Helper()
	out, err := p.Run(t.Context(), sql)
	if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return out
}

// ExecFileAsOwner runs the SQL file at path in the test's database as its owner role (SET
// ROLE), so that what it creates belongs to the owner, as a Keycloak schema does.
func (p Database) ExecFileAsOwner(t testing.TB, path string) {
	t.Helper()
	sql, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Exec(t, "SET ROLE "+p.Owner+";\n"+string(sql))
}

// ChartValues are the `postgresql` values of the identity test charts (testdata/charts)
// that point a release at this database as its owner.
func (p Database) ChartValues() map[string]any {
	return map[string]any{"host": p.Host, "port": p.Port, "database": p.Database, "username": p.Owner, "password": p.OwnerPassword}
}

// Run is Exec for callers without a testing.TB.
func (p Database) Run(ctx context.Context, sql string) (string, error) {
	return p.psql(ctx, p.Database, p.SuperUser, p.SuperPassword, sql)
}

func (p Database) psql(ctx context.Context, database, name, password, sql string) (string, error) {
	return psql(ctx, p.PsqlDir, p.Host, p.Port, database, name, password, sql)
}

// PostgresServer is a server of one test binary: the shared one, or that of another major.
type PostgresServer struct {
	// binDir holds initdb and postgres; psqlDir the psql of the test world's own statements.
	binDir  string
	psqlDir string
	// env is the server's environment beyond this process's: the library path of a server
	// from tools/postgres.sh.
	env           []string
	major         int
	dir           string
	port          int
	superPassword string
	ownerPassword string
	cmd           *exec.Cmd
	exited        chan struct{}
	logPath       string
	databases     atomic.Int64
}

const (
	pgDirPrefix = "testworld-pg-"
	pgSuperUser = "postgres"
	pgOwner     = "keycloak"
)

// Postgres gives the test a database of its own on the shared server, starting the server
// on first use. The database is dropped when the test ends.
func Postgres(t testing.TB) Database {
	t.Helper()
	srv, err := shared.pg()
	if err != nil {
		t.Fatalf("testworld: postgres: %v", err)
	}
	return srv.testDatabase(t)
}

// testDatabase creates a database for the test, dropped when it ends.
func (srv *PostgresServer) testDatabase(t testing.TB) Database {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", srv.databases.Add(1), sanitize(t.Name(), 40))
	db, err := srv.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.DropDatabase(context.Background(), name); err != nil {
			t.Errorf("testworld: %v", err)
		}
	})
	return db
}

// CreateDatabase creates a database owned by the non-superuser owner role.
func (s *PostgresServer) CreateDatabase(ctx context.Context, name string) (Database, error) {
	db := Database{
		Host: "127.0.0.1", Port: s.port, Database: name,
		SuperUser: pgSuperUser, SuperPassword: s.superPassword,
		Owner: pgOwner, OwnerPassword: s.ownerPassword,
		BinDir: s.binDir, PsqlDir: s.psqlDir, Major: s.major, ServerPID: s.PID(),
	}
	if _, err := db.psql(ctx, "postgres", pgSuperUser, s.superPassword,
		fmt.Sprintf(`CREATE DATABASE %q OWNER %q`, name, pgOwner)); err != nil {
		return Database{}, fmt.Errorf("create database %s: %w", name, err)
	}
	return db, nil
}

// DropDatabase drops a database, ending the sessions still connected to it.
func (s *PostgresServer) DropDatabase(ctx context.Context, name string) error {
	sql := fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)
	if s.major < 13 {
		// DROP DATABASE ... WITH (FORCE) is new in 13: refuse new sessions, end the others.
		sql = fmt.Sprintf(`UPDATE pg_database SET datallowconn = false WHERE datname = '%[1]s';
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%[1]s';
			DROP DATABASE IF EXISTS %[1]q`, name)
	}
	if _, err := psql(ctx, s.psqlDir, "127.0.0.1", s.port, "postgres", pgSuperUser, s.superPassword, sql); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func (w *world) pg() (*PostgresServer, error) { return w.postgres.get(StartPostgresServer) }

// PostgresBinDir finds the PostgreSQL server binaries: $TESTWORLD_PG_BIN, else the newest
// /usr/lib/postgresql/<major>/bin that has initdb.
func PostgresBinDir() (string, error) {
	if dir := os.Getenv("TESTWORLD_PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin " +
			"(install postgresql, e.g. apt-get install postgresql-15, or set TESTWORLD_PG_BIN)")
	}
	major := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	return filepath.Dir(dirs[0]), nil
}

// StartPostgresServer starts a server from the system's binaries (PostgresBinDir), as the
// shared server of Postgres.
func StartPostgresServer() (*PostgresServer, error) {
	binDir, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	return startPostgresServer(binDir, "")
}

// startPostgresServer starts a server whose psql is in psqlDir. Its other binaries are the
// ones in psqlDir too when tree is empty, else those of tree, a server tree of
// tools/postgres.sh (bin, lib, share).
func startPostgresServer(psqlDir, tree string) (*PostgresServer, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	reapStaleDirs(pgDirPrefix)
	dir, err := os.MkdirTemp("", pgDirPrefix)
	if err != nil {
		return nil, err
	}
	if err := writeOwner(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &PostgresServer{
		binDir: psqlDir, psqlDir: psqlDir, dir: dir,
		superPassword: randomHex(12), ownerPassword: randomHex(12),
		logPath: filepath.Join(dir, "server.log"),
	}
	fail := func(err error) (*PostgresServer, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.superPassword+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if cred != nil {
		// initdb refuses to run as root: the server runs as the postgres system user, which
		// must own its directory.
		if err := chownAll(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(err)
		}
	}
	if tree != "" {
		if cred != nil {
			// The tools cache is in root's home, which the postgres user cannot enter, and
			// opening root's home to other users is no fix. The server runs instead from hard
			// links to tree's files in its own directory (copies across file systems), made
			// after the chown above so that they stay root's: the server's user can read and
			// run them, not change them, nothing else of the cache is open to it, and the
			// links go with the directory.
			run := filepath.Join(dir, "server")
			if err := linkTree(tree, run); err != nil {
				return fail(fmt.Errorf("link %s for the postgres user: %w", tree, err))
			}
			tree = run
		}
		s.binDir = filepath.Join(tree, "bin")
		s.env = []string{"LD_LIBRARY_PATH=" + filepath.Join(tree, "lib")}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(s.binDir, "initdb"),
		"-D", data, "-U", pgSuperUser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
		"-E", "UTF8", "--no-locale", "--no-sync")
	initdb.Env = append(os.Environ(), s.env...)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, tail(out)))
	}
	os.Remove(pwfile)

	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		s.port = port
		err = s.start(data, cred)
		if err == nil {
			break
		}
		if attempt == 2 {
			return fail(err)
		}
	}
	ctx := context.Background()
	// The server was started with password_encryption=scram-sha-256, which a server of major
	// 11 or 13 does not default to: the role's password is stored as a SCRAM secret.
	if _, err := psql(ctx, s.psqlDir, "127.0.0.1", s.port, "postgres", pgSuperUser, s.superPassword,
		fmt.Sprintf(`CREATE ROLE %q LOGIN PASSWORD '%s' NOSUPERUSER NOCREATEDB NOCREATEROLE`, pgOwner, s.ownerPassword)); err != nil {
		s.Stop()
		return nil, fmt.Errorf("create owner role: %w", err)
	}
	out, err := psql(ctx, s.psqlDir, "127.0.0.1", s.port, "postgres", pgSuperUser, s.superPassword,
		`SELECT current_setting('server_version_num')`)
	num, convErr := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || convErr != nil {
		s.Stop()
		return nil, fmt.Errorf("read server version: %w", errors.Join(err, convErr))
	}
	s.major = num / 10000
	return s, nil
}

// start runs the server in the foreground of a child process, so that it dies with the test
// binary even when the binary is killed (Pdeathsig), and waits until it accepts connections.
func (s *PostgresServer) start(data string, cred *syscall.Credential) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"),
		"-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories=",
		"-c", "password_encryption=scram-sha-256",
		// A throwaway server: durability buys nothing here.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), s.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("postgres exited during start: %s", tail(log))
		default:
		}
		_, err := psql(context.Background(), s.psqlDir, "127.0.0.1", s.port, "postgres", pgSuperUser, s.superPassword, "SELECT 1")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("postgres not ready after 60s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *PostgresServer) Stop() error {
	defer os.RemoveAll(s.dir)
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	// SIGINT is PostgreSQL's fast shutdown: it ends sessions and stops cleanly.
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		return nil
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("postgres did not stop within 30s; killed")
	}
}

// serverCredential returns the identity to run the server as: nil (this process's own) unless
// this process is root, in which case the postgres system user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, the server must run as the postgres system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownAll(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

// psql runs one SQL text through psql, password in the child's environment only.
func psql(ctx context.Context, binDir, host string, port int, database, name, password, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "psql"),
		"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", host, "-p", strconv.Itoa(port), "-U", name, "-d", database)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, tail(stderr.Bytes()))
	}
	return stdout.String(), nil
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// sanitize turns a test name into a lower-case identifier fragment of at most n bytes.
func sanitize(name string, n int) string {
	s := unsafeName.ReplaceAllString(strings.ToLower(name), "_")
	s = strings.Trim(s, "_")
	if len(s) > n {
		s = s[:n]
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tail returns the last few lines of a process's output, for error messages.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}
