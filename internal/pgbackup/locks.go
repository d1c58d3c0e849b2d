package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Blocker is a session that held a lock another waited for, as pg_stat_activity shows it to
// the waiting role: the state and times of another role's session are hidden from a role
// that is not a member of it (State is then "").
type Blocker struct {
	PID         int
	User        string
	Application string
	State       string
	// For is how long it had been in its transaction (or connected, outside one).
	For time.Duration
	// Query is the start of its last statement, when visible.
	Query string
}

func (b Blocker) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "pid %d (user %s, application %q", b.PID, b.User, b.Application)
	if b.State != "" {
		fmt.Fprintf(&s, ", %s for %s", b.State, b.For.Round(time.Second))
	} else {
		s.WriteString(", its state hidden from this role")
	}
	if b.Query != "" {
		fmt.Fprintf(&s, ", last statement %q", b.Query)
	}
	s.WriteString(")")
	return s.String()
}

// keycloakApp reports whether a session's application_name says Keycloak: its JDBC driver's
// default, or a name with keycloak in it.
func (b Blocker) keycloakApp() bool {
	a := strings.ToLower(b.Application)
	return a == "postgresql jdbc driver" || strings.Contains(a, "keycloak")
}

// LockTimeoutError is a restore or backup that waited db-lock-timeout for a lock that other
// sessions held. It names them and what to do.
type LockTimeoutError struct {
	// What waited: "restore" or "backup".
	What    string
	Timeout time.Duration
	// Blockers are the sessions that held the lock, as last seen while it waited; none when
	// they were gone by the time they were looked up.
	Blockers []Blocker
	Err      error
}

func (e *LockTimeoutError) Error() string {
	var s strings.Builder
	fmt.Fprintf(&s, "the %s waited db-lock-timeout (%s) for a lock and gave up; nothing was changed", e.What, e.Timeout)
	if len(e.Blockers) == 0 {
		s.WriteString("; the session that held it had ended by the time it was looked up: run it again")
		return s.String()
	}
	s.WriteString("; the lock is held by ")
	keycloak := false
	for i, b := range e.Blockers {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(b.String())
		keycloak = keycloak || b.keycloakApp()
	}
	if keycloak {
		s.WriteString(". That is Keycloak's database driver: stop Keycloak first (quiesce: true scales its workload to 0; name it with workload when it is not found), then run again")
	} else {
		s.WriteString(". End it (as its role or a superuser: SELECT pg_terminate_backend(<pid>)), or stop what holds it; if it is Keycloak, quiesce: true scales it to 0; then run again")
	}
	return s.String()
}

func (e *LockTimeoutError) Unwrap() error { return e.Err }

// ErrLockTimeout is wrapped by every *LockTimeoutError.
var ErrLockTimeout = errors.New("lock timeout")

// Is makes errors.Is(err, ErrLockTimeout) true for every LockTimeoutError.
func (e *LockTimeoutError) Is(target error) bool { return target == ErrLockTimeout }

// errSessionsGone is why an attempt was stopped when the server no longer had its sessions
// while the client still waited on them: the server restarted, or ended them, and the way
// to it (a port-forward whose pod side closed without telling the client) did not say so.
var errSessionsGone = errors.New("the server no longer has the sessions of this attempt (it restarted or ended them) while the client still waited on them")

// sessionsGone adds errSessionsGone to the error of an attempt that its watch stopped (ctx
// is the attempt's): what failed then was only the stop.
func sessionsGone(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errSessionsGone) && !errors.Is(err, errSessionsGone) {
		return fmt.Errorf("%w: %w", errSessionsGone, err)
	}
	return err
}

// watch looks, on a session of its own, at an attempt of a restore or backup while it runs:
// who blocks its sessions (pg_blocking_pids), so that a lock timeout can name them (once the
// statement has given up, the server no longer says who blocked it); and whether its sessions
// are still there, so that an attempt whose sessions the server lost is stopped rather than
// left waiting for an answer that will not come.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	last []Blocker
}

// watchAttempt starts a watch of the sessions tagged app (the attempt's own; one of them is
// open when it starts); it looks every interval, connecting again when its session breaks.
// When the sessions it saw are gone twice in a row, it calls abort with errSessionsGone.
func (s Session) watchAttempt(ctx context.Context, connString, app string, attempt int, abort context.CancelCauseFunc) *watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &watch{cancel: cancel, done: make(chan struct{})}
	interval := min(time.Second, s.lockTimeout()/4)
	go func() {
		defer close(w.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.WithoutCancel(ctx))
			}
		}()
		seen, misses := false, 0
		for {
			if conn == nil {
				conn, _ = s.connect(ctx, connString, "watch", attempt)
			}
			if conn != nil {
				n, blockers, err := attemptState(ctx, conn, app)
				switch {
				case err != nil:
					conn.Close(context.WithoutCancel(ctx))
					conn = nil
				case n > 0:
					seen, misses = true, 0
				case seen:
					if misses++; misses >= 2 {
						abort(errSessionsGone)
						return
					}
				}
				if len(blockers) > 0 {
					w.mu.Lock()
					w.last = blockers
					w.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	}()
	return w
}

// stop ends the watch and returns the blockers it last saw.
func (w *watch) stop() []Blocker {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// attemptState counts the sessions tagged app and lists who blocks them.
func attemptState(ctx context.Context, conn *pgx.Conn, app string) (int, []Blocker, error) {
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
		return 0, nil, err
	}
	blockers, err := blockersOf(ctx, conn, app)
	return n, blockers, err
}

// blockersOf lists the sessions that block a session tagged app.
func blockersOf(ctx context.Context, conn *pgx.Conn, app string) ([]Blocker, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT b.pid, coalesce(b.usename::text, ''), coalesce(b.application_name, ''),
			coalesce(b.state, ''), coalesce(extract(epoch FROM now() - coalesce(b.xact_start, b.backend_start))::float8, 0),
			left(coalesce(b.query, ''), 80)
		FROM pg_catalog.pg_stat_activity w
		CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
		JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
		WHERE w.application_name = $1
		ORDER BY b.pid`, app)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Blocker, error) {
		var b Blocker
		var secs float64
		err := row.Scan(&b.PID, &b.User, &b.Application, &b.State, &secs, &b.Query)
		b.For = time.Duration(secs * float64(time.Second))
		if b.Query == "<insufficient privilege>" {
			b.Query = ""
		}
		return b, err
	})
}

// lockTimedOut reports whether err is a statement that gave up waiting for a lock: SQLSTATE
// 55P03 from pgx, psql's message for it, or pg_dump's --lock-wait-timeout (a statement timeout
// of its LOCK TABLE).
func lockTimedOut(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code == "55P03"
	}
	msg := err.Error()
	return strings.Contains(msg, "canceling statement due to lock timeout") ||
		strings.Contains(msg, "could not obtain lock") ||
		(strings.Contains(msg, "canceling statement due to statement timeout") && strings.Contains(msg, "LOCK TABLE"))
}
