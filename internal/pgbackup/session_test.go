package pgbackup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// breakingProxy passes connections on to a server, except that it cuts the first one that
// has carried more than after bytes from the client: the client's side is closed, the
// server's is kept open, as a port-forward whose node agent died leaves it. The server then
// still sees the session, in COPY, holding its locks.
type breakingProxy struct {
	listener net.Listener
	target   string
	after    int64
	broken   atomic.Bool
	mu       sync.Mutex
	held     []net.Conn // server sides kept open after the break
}

func startBreakingProxy(t *testing.T, target string, after int64) *breakingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &breakingProxy{listener: l, target: target, after: after}
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.held {
			c.Close()
		}
	})
	return p
}

func (p *breakingProxy) serve() {
	for {
		c, err := p.listener.Accept()
		if err != nil {
			return
		}
		go p.pass(c)
	}
}

func (p *breakingProxy) pass(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	go func() {
		io.Copy(c, up)
		c.Close()
	}()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		k, err := c.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > p.after && p.broken.CompareAndSwap(false, true) {
				c.Close()
				p.mu.Lock()
				p.held = append(p.held, up)
				p.mu.Unlock()
				return
			}
			if _, err := up.Write(buf[:k]); err != nil {
				c.Close()
				return
			}
		}
		if err != nil {
			up.Close()
			return
		}
	}
}

// through returns db's owner URL with its host and port replaced by addr.
func through(t *testing.T, db testworld.Database, addr string) string {
	t.Helper()
	u, err := url.Parse(db.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// withBulk loads the Keycloak 11 fixture and a table of about 4 MB into a new database.
func withBulk(t *testing.T) testworld.Database {
	t.Helper()
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	db.Exec(t, "SET ROLE "+db.Owner+`; CREATE TABLE bulk (id int PRIMARY KEY, payload text);
		INSERT INTO bulk SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 30000) g`)
	return db
}

// toolSessions lists the sessions of db whose application_name starts with prefix.
func toolSessions(t *testing.T, db testworld.Database, prefix string) []string {
	t.Helper()
	out := db.Exec(t, fmt.Sprintf(`SELECT pid || ' ' || application_name || ' ' || coalesce(state, '') FROM pg_stat_activity
		WHERE datname = current_database() AND application_name LIKE '%s%%' AND pid <> pg_backend_pid()`, prefix))
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(out), " ", "_"))
}

// TestRestoreRetriesABrokenStream: the restore's stream is cut mid-COPY where the server
// cannot see it (its session stays, holding an ACCESS EXCLUSIVE lock on every table it has
// created or dropped). The second attempt ends that session, restores, and the database
// equals the backup. The log says what broke, after how much, that nothing was committed,
// and which session it ended. Nothing of the run is left on the server afterwards.
func TestRestoreRetriesABrokenStream(t *testing.T) {
	db := withBulk(t)
	want := contentDigest(t, db)
	b, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "b"), pgbackup.BackupOptions{ConnString: db.URL(), Format: bundle.FormatPlain})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "SET ROLE "+db.Owner+"; DELETE FROM bulk WHERE id % 2 = 0; UPDATE realm SET not_before = not_before + 1")

	proxy := startBreakingProxy(t, net.JoinHostPort(db.Host, strconv.Itoa(db.Port)), 1<<20)
	var log testworld.LogBuffer
	session := pgbackup.Session{Run: "test-run", Retry: pgbackup.Retry{Attempts: 3, Backoff: 100 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(&log, nil))}
	conn := through(t, db, proxy.listener.Addr().String())
	if _, err := pgbackup.RestoreBundle(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: conn, Session: session}); err != nil {
		t.Fatalf("restore: %v\n%s", err, log.String())
	}
	if !proxy.broken.Load() {
		t.Fatal("the proxy never cut the stream")
	}
	if got := contentDigest(t, db); got != want {
		t.Error("the database after the retried restore differs from the backup")
	}
	for _, re := range []string{
		`level=WARN msg="restore attempt 1/3 failed; retrying 2/3" broke="the connection to 127\.0\.0\.1:\d+ lost after \d+\.\dMiB" committed=nothing cause=".*psql`,
		`level=WARN msg="ended a session of identity-upgrade left behind holding locks, before the restore" pid=\d+ application="identity-upgrade test-run restore#1" state=active`,
	} {
		if !regexp.MustCompile(re).MatchString(log.String()) {
			t.Errorf("the log lacks %s:\n%s", re, log.String())
		}
	}
	if _, err := session.EndRunSessions(t.Context(), db.URL()); err != nil {
		t.Fatal(err)
	}
	if left := toolSessions(t, db, "identity-upgrade"); len(left) > 0 {
		t.Errorf("sessions of the run left: %v", left)
	}
}

// TestBackupRetriesABrokenStream: pg_dump's connection is cut; the backup is taken again from
// a new snapshot, and it restores to the database backed up.
func TestBackupRetriesABrokenStream(t *testing.T) {
	db := withBulk(t)
	want := contentDigest(t, db)
	// pg_dump's queries and the COPY requests it sends are small: cut it when it has sent
	// its table list and started the data.
	proxy := startBreakingProxy(t, net.JoinHostPort(db.Host, strconv.Itoa(db.Port)), 8<<10)
	var log testworld.LogBuffer
	session := pgbackup.Session{Run: "test-run", Retry: pgbackup.Retry{Attempts: 3, Backoff: 100 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(&log, nil))}
	b, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "b"), pgbackup.BackupOptions{
		ConnString: through(t, db, proxy.listener.Addr().String()), Session: session})
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, log.String())
	}
	if !proxy.broken.Load() {
		t.Fatal("the proxy never cut a stream")
	}
	if !strings.Contains(log.String(), `msg="backup attempt 1/3 failed; retrying 2/3"`) {
		t.Errorf("the log does not say the backup was retried:\n%s", log.String())
	}
	db.Exec(t, "SET ROLE "+db.Owner+"; DELETE FROM bulk")
	if _, err := pgbackup.Restore(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: db.URL()}); err != nil {
		t.Fatal(err)
	}
	if got := contentDigest(t, db); got != want {
		t.Error("the backup taken on the second attempt does not restore the database backed up")
	}
}

// TestLockTimeoutNamesTheBlocker: a session that is not the tool's holds a lock the restore
// (ACCESS EXCLUSIVE, to drop the table) or the backup (ACCESS SHARE) needs. Each gives up
// after the lock timeout, not the run's whole timeout, naming the session and the fix, and
// changes nothing. It is not retried: waiting again would not help.
func TestLockTimeoutNamesTheBlocker(t *testing.T) {
	const lockTimeout = 2 * time.Second
	db := withBulk(t)
	b, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "b"), pgbackup.BackupOptions{ConnString: db.URL()})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "SET ROLE "+db.Owner+"; UPDATE realm SET not_before = not_before + 1")
	changed := contentDigest(t, db)
	session := pgbackup.Session{Run: "test-run", LockTimeout: lockTimeout, Retry: pgbackup.Retry{Attempts: 3, Backoff: 100 * time.Millisecond}}

	t.Run("restore, Keycloak's session", func(t *testing.T) {
		pid := db.HoldLock(t, false, "PostgreSQL JDBC Driver", "realm", "ACCESS SHARE")
		begin := time.Now()
		_, err := pgbackup.RestoreBundle(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: db.URL(), Session: session})
		took := time.Since(begin)
		t.Logf("the restore gave up after %s (lock timeout %s): %v", took.Round(10*time.Millisecond), lockTimeout, err)
		var lt *pgbackup.LockTimeoutError
		if !errors.As(err, &lt) || !errors.Is(err, pgbackup.ErrLockTimeout) || !pgbackup.Untouched(err) || pgbackup.Refused(err) {
			t.Fatalf("error %v, want a LockTimeoutError that changed nothing and is not a refusal", err)
		}
		for _, want := range []string{fmt.Sprintf("pid %d (user keycloak, application \"PostgreSQL JDBC Driver\", idle in transaction for", pid),
			"That is Keycloak's database driver", "quiesce: true"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error lacks %q: %v", want, err)
			}
		}
		if took > lockTimeout+5*time.Second {
			t.Errorf("gave up after %s, lock timeout %s", took, lockTimeout)
		}
		if contentDigest(t, db) != changed {
			t.Error("the restore that gave up changed the database")
		}
	})
	t.Run("backup, a superuser's session", func(t *testing.T) {
		pid := db.HoldLock(t, true, "psql", "realm", "ACCESS EXCLUSIVE")
		begin := time.Now()
		_, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "b2"), pgbackup.BackupOptions{ConnString: db.URL(), Session: session})
		took := time.Since(begin)
		t.Logf("the backup gave up after %s: %v", took.Round(10*time.Millisecond), err)
		if !errors.Is(err, pgbackup.ErrLockTimeout) || pgbackup.Refused(err) {
			t.Fatalf("error %v, want a lock timeout", err)
		}
		for _, want := range []string{fmt.Sprintf("pid %d (user postgres, application \"psql\", its state hidden from this role)", pid),
			"SELECT pg_terminate_backend(<pid>)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error lacks %q: %v", want, err)
			}
		}
		if took > lockTimeout+5*time.Second {
			t.Errorf("gave up after %s, lock timeout %s", took, lockTimeout)
		}
	})
}

// TestSessionsOfADeadRun: a session that an earlier run of the tool left in its transaction,
// holding a lock, is ended before the restore, which then does not wait for it; one that
// holds nothing, and a session of another client, are left alone.
func TestSessionsOfADeadRun(t *testing.T) {
	db := withBulk(t)
	b, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "b"), pgbackup.BackupOptions{ConnString: db.URL()})
	if err != nil {
		t.Fatal(err)
	}
	dead := db.HoldLock(t, false, "identity-upgrade gh-1-1 backup#1", "realm", "ACCESS SHARE")
	idle, err := pgx.Connect(t.Context(), db.URL()+"&application_name="+url.QueryEscape("identity-upgrade gh-1-1 ping#1"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(context.Background())
	var log testworld.LogBuffer
	session := pgbackup.Session{Run: "gh-2-1", LockTimeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(&log, nil))}
	if _, err := pgbackup.RestoreBundle(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: db.URL(), Session: session}); err != nil {
		t.Fatalf("restore: %v\n%s", err, log.String())
	}
	want := fmt.Sprintf(`msg="ended a session of identity-upgrade left behind holding locks, before the restore" pid=%d application="identity-upgrade gh-1-1 backup#1" state="idle in transaction"`, dead)
	if !strings.Contains(log.String(), want) {
		t.Errorf("the log lacks %s:\n%s", want, log.String())
	}
	if err := idle.Ping(t.Context()); err != nil {
		t.Errorf("a session of the dead run that held nothing was ended: %v", err)
	}
	if left := toolSessions(t, db, "identity-upgrade gh-1-1 backup"); len(left) > 0 {
		t.Errorf("the dead run's session is still there: %v", left)
	}
}

// TestSessionsCarryTheRun: every session of the tool names the tool and the run, so that a
// later run can tell what was left.
func TestSessionsCarryTheRun(t *testing.T) {
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	seen := make(chan string, 1)
	session := pgbackup.Session{Run: "gh-7-2"}
	// A slow pg_dump shows its session while it runs.
	wrapper := pgDumpWrapper(t, "", `sleep 1; exec "$REAL_PG_DUMP" "$@"`)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if s := toolSessions(t, db, "identity-upgrade gh-7-2 backup#1"); len(s) > 0 {
				seen <- strings.Join(s, " ")
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		seen <- ""
	}()
	if _, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "b"), pgbackup.BackupOptions{
		ConnString: db.URL(), Tools: pgbackup.Tools{PgDump: wrapper}, Session: session}); err != nil {
		t.Fatal(err)
	}
	if s := <-seen; s == "" {
		t.Error("no session named identity-upgrade gh-7-2 backup#1 was seen during the backup")
	}
}
