package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AppName starts the application_name of every session the tool opens: "identity-upgrade
// <run> <purpose>#<n>". A later run tells the sessions an earlier one left behind by it.
const AppName = "identity-upgrade"

// DefaultLockTimeout bounds every wait for a lock when Session.LockTimeout is 0.
const DefaultLockTimeout = 30 * time.Second

// Session says how the tool's sessions present themselves to the server, how long they wait
// for a lock, and how often what is safe to repeat is tried.
type Session struct {
	// Run names the run in each session's application_name, so that its sessions can be told
	// from those of other runs (and of other clients). Empty: "run".
	Run string
	// LockTimeout bounds every wait for a lock (lock_timeout of every session, pg_dump's
	// --lock-wait-timeout); 0 means DefaultLockTimeout. When it expires, the error names the
	// sessions that held the lock (a *LockTimeoutError).
	LockTimeout time.Duration
	// Retry says how often a restore, a backup and a connection check are tried when the
	// connection breaks.
	Retry Retry
	// Route describes the way to the database for the log, e.g. "port-forward to pod
	// identity-postgresql-id-0"; nil or "" means the connection to its host and port.
	Route func() string
	// Log receives the attempts that failed and the sessions ended; nil logs nothing.
	Log *slog.Logger
}

func (s Session) lockTimeout() time.Duration {
	if s.LockTimeout > 0 {
		return s.LockTimeout
	}
	return DefaultLockTimeout
}

func (s Session) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// prefix is the application_name prefix of this run's sessions.
func (s Session) prefix() string {
	run := s.Run
	if run == "" {
		run = "run"
	}
	return AppName + " " + run + " "
}

// tag is the application_name of one session: the run, what it does and its attempt. The
// server keeps at most 63 bytes of it.
func (s Session) tag(purpose string, attempt int) string {
	return s.prefix() + purpose + "#" + strconv.Itoa(attempt)
}

// route describes the way to the database of cfg.
func (s Session) route(cfg *pgconn.Config) string {
	if s.Route != nil {
		if r := s.Route(); r != "" {
			return r
		}
	}
	return fmt.Sprintf("the connection to %s:%d", cfg.Host, cfg.Port)
}

// connect opens a session tagged purpose#attempt whose lock waits are bounded.
func (s Session) connect(ctx context.Context, connString, purpose string, attempt int) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		// pgx's parse errors may quote the string, which may hold the password.
		return nil, errors.New("parse database connection string: invalid (check database-url or the db-* inputs)")
	}
	cfg.RuntimeParams["application_name"] = s.tag(purpose, attempt)
	cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(s.lockTimeout().Milliseconds(), 10)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %q on %s:%d: %w", cfg.Database, cfg.Host, cfg.Port, err)
	}
	return conn, nil
}

// env is the environment of a client program's session tagged purpose#attempt: the
// connection (connEnv), its application_name and its lock timeout, and options, more
// session settings ("-c name=value").
func (s Session) env(connString, purpose string, attempt int, options ...string) ([]string, *pgconn.Config, error) {
	env, cfg, err := connEnv(connString)
	if err != nil {
		return nil, nil, err
	}
	options = append([]string{"-c lock_timeout=" + strconv.FormatInt(s.lockTimeout().Milliseconds(), 10)}, options...)
	env = append(env, "PGAPPNAME="+s.tag(purpose, attempt), "PGOPTIONS="+strings.Join(options, " "))
	return env, cfg, nil
}

// LeftSession is a session of the tool that a broken stream or a dead run left on the
// server, which a run ended.
type LeftSession struct {
	PID         int
	Application string
	State       string
	// For is how long it had been in its state.
	For time.Duration
}

func (l LeftSession) String() string {
	return fmt.Sprintf("pid %d (%s, %s for %s)", l.PID, l.Application, l.State, l.For.Round(time.Second))
}

// endLeftSessions ends the sessions of the tool in conn's database, other than conn's own,
// that hold a lock on a relation while they wait for their client to send: what a broken
// stream leaves behind (the server does not see a stream that breaks behind a port-forward,
// and its session keeps waiting in COPY, or idle in its transaction, with its locks) and what
// a run that died left. Such a session would block the restore or backup about to start. The
// database owner may end sessions of its own role without being a superuser. Two runs of the
// tool must not work on one database at once: a session of the other would be taken for one
// left behind.
func (s Session) endLeftSessions(ctx context.Context, conn *pgx.Conn) ([]LeftSession, error) {
	return s.end(ctx, conn, `a.application_name LIKE $1 || '%'
		AND a.wait_event = 'ClientRead'
		AND (a.state LIKE 'idle in transaction%' OR a.state = 'active')
		AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation')`, AppName+" ")
}

// end terminates the sessions of conn's database, other than conn's, that where (SQL over
// pg_stat_activity a, with $1 the prefix given) selects.
func (s Session) end(ctx context.Context, conn *pgx.Conn, where, prefix string) ([]LeftSession, error) {
	rows, err := conn.Query(ctx, `SELECT a.pid, a.application_name, coalesce(a.state, ''),
			extract(epoch FROM now() - coalesce(a.state_change, a.backend_start))::float8, pg_catalog.pg_terminate_backend(a.pid)
		FROM pg_catalog.pg_stat_activity a
		WHERE a.datname = current_database() AND a.pid <> pg_catalog.pg_backend_pid() AND `+where, prefix)
	if err != nil {
		return nil, fmt.Errorf("end the sessions left behind: %w", err)
	}
	var ended []LeftSession
	for rows.Next() {
		var l LeftSession
		var secs float64
		var ok bool
		if err := rows.Scan(&l.PID, &l.Application, &l.State, &secs, &ok); err != nil {
			return ended, fmt.Errorf("end the sessions left behind: %w", err)
		}
		l.For = time.Duration(secs * float64(time.Second))
		if ok {
			ended = append(ended, l)
		}
	}
	if err := rows.Err(); err != nil {
		return ended, fmt.Errorf("end the sessions left behind: %w", err)
	}
	return ended, nil
}

// clearLeft ends the sessions left behind (endLeftSessions) before what is about to start,
// and logs each.
func (s Session) clearLeft(ctx context.Context, conn *pgx.Conn, before string) error {
	ended, err := s.endLeftSessions(ctx, conn)
	for _, l := range ended {
		s.log().WarnContext(ctx, "ended a session of identity-upgrade left behind holding locks, before the "+before,
			"pid", l.PID, "application", l.Application, "state", l.State, "for", l.For.Round(time.Second))
	}
	return err
}

// EndRunSessions ends every session of this run still on the server other than the one it
// opens to do so: those a broken stream left there, which the server still thinks are
// connected. A run calls it last, so that it leaves no session behind. It returns what it
// ended.
func (s Session) EndRunSessions(ctx context.Context, connString string) ([]LeftSession, error) {
	conn, err := s.connect(ctx, connString, "sweep", 1)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ended, err := s.end(ctx, conn, `a.application_name LIKE $1 || '%'`, s.prefix())
	for _, l := range ended {
		s.log().InfoContext(ctx, "ended a session of this run that a broken stream left on the server",
			"pid", l.PID, "application", l.Application, "state", l.State, "for", l.For.Round(time.Second))
	}
	return ended, err
}

// WaitForDatabase waits, up to within and ctx, until the database of connString accepts a
// session and answers: behind a port-forward it may be a pod that a rollback has just
// replaced, still starting, or a server restarting.
func (s Session) WaitForDatabase(ctx context.Context, connString string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	begin := time.Now()
	for attempt := 1; ; attempt++ {
		err := s.ping(ctx, connString, attempt)
		if err == nil {
			if attempt > 1 {
				s.log().InfoContext(ctx, "the database accepts connections again", "after", time.Since(begin).Round(time.Millisecond))
			}
			return nil
		}
		if Refused(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the database did not accept connections within %s: %w", time.Since(begin).Round(time.Second), err)
		case <-time.After(time.Second):
		}
	}
}

func (s Session) ping(ctx context.Context, connString string, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := s.connect(ctx, connString, "ping", attempt)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}
