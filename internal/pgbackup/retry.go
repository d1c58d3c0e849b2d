package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// Defaults of Retry.
const (
	DefaultAttempts = 3
	DefaultBackoff  = 5 * time.Second
	// maxBackoff caps the doubled wait between attempts.
	maxBackoff = time.Minute
)

// Retry bounds how often what is safe to repeat is tried when the way to the database
// breaks: a streamed restore (one transaction: nothing was committed, or it is restored
// again whole), a backup (a new snapshot), a connection check.
type Retry struct {
	// Attempts is how many times in all; 0 means DefaultAttempts, 1 no retry.
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each further one (at
	// most a minute); 0 means DefaultBackoff.
	Backoff time.Duration
}

func (r Retry) attempts() int {
	if r.Attempts > 0 {
		return r.Attempts
	}
	return DefaultAttempts
}

// wait is the pause before attempt next (2, 3, ...).
func (r Retry) wait(next int) time.Duration {
	d := r.Backoff
	if d <= 0 {
		d = DefaultBackoff
	}
	for i := 2; i < next && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// attemptError is a failed attempt with what the log says of it: how much had gone through
// and whether anything was committed.
type attemptError struct {
	err error
	// moved is how many bytes had gone through the stream when it broke (the SQL written
	// into psql, or pg_dump's output read).
	moved int64
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// retry runs attempt until it succeeds, fails in a way that repeating cannot help
// (!transient), the attempts are used up or ctx ends. Each failed attempt that is tried
// again is logged with what broke. what names the work ("restore", "backup", "connection
// check"); changes says whether an attempt changes the database (it then says whether
// anything was committed).
func (s Session) retry(ctx context.Context, what string, route func() string, changes bool, attempt func(ctx context.Context, n int) error) error {
	total := s.Retry.attempts()
	for n := 1; ; n++ {
		err := attempt(ctx, n)
		if err == nil || n >= total || ctx.Err() != nil || !transient(err) {
			return err
		}
		wait := s.Retry.wait(n + 1)
		broke := route() + " lost"
		if ae, ok := errors.AsType[*attemptError](err); ok && ae.moved > 0 {
			broke += " after " + progress.Bytes(ae.moved)
		}
		args := []any{"broke", broke}
		if changes {
			if errors.Is(err, ErrNotStarted) {
				args = append(args, "committed", "nothing")
			} else {
				args = append(args, "committed", "unknown; the next attempt restores it whole again")
			}
		}
		args = append(args, "cause", err.Error(), "retry_in", wait)
		s.log().WarnContext(ctx, fmt.Sprintf("%s attempt %d/%d failed; retrying %d/%d", what, n, total, n+1, total), args...)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// transient reports whether err is the way to the database breaking (a connection refused,
// reset or cut, the server restarting or ending the session), which another attempt may get
// past, rather than something repeating cannot change: the bundle, the versions, the
// credentials, the SQL, a lock another session holds, the run being stopped.
func transient(err error) bool {
	if errors.Is(err, errSessionsGone) {
		return true
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, bundle.ErrRefused) || errors.Is(err, ErrOlderServer) || errors.Is(err, ErrNoClient) ||
		errors.Is(err, ErrLockTimeout) || errors.Is(err, ErrInput) {
		return false
	}
	if _, ok := errors.AsType[*damagedError](err); ok {
		return false
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return transientCode(pgErr.Code)
	}
	if te, ok := errors.AsType[*toolError](err); ok {
		return transientMessage(te.stderr)
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true // a PgError inside (a refused login) was decided above
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	// Not io.EOF or a broken pipe as such: the dump's own pipes end so too, when a dump is cut
	// short or damaged, and repeating that helps nothing.
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || pgconn.SafeToRetry(err) ||
		transientMessage(err.Error())
}

// transientCode reports whether a SQLSTATE is the connection's, or the server's going away
// or not being ready yet.
func transientCode(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300": // admin shutdown, crash shutdown, cannot connect now, too many connections
		return true
	}
	return strings.HasPrefix(code, "08") // connection exception
}

// transientMessage reports whether a client program's error says the connection broke or
// the server was not there, and not that it refused the login or the database.
func transientMessage(msg string) bool {
	// Notices and warnings (psql echoes the dump's "drop cascades to ..." and "... does not
	// exist, skipping") say nothing of why it failed.
	var lines []string
	for line := range strings.Lines(msg) {
		if !strings.Contains(line, "NOTICE:") && !strings.Contains(line, "WARNING:") {
			lines = append(lines, line)
		}
	}
	msg = strings.Join(lines, "")
	for _, permanent := range []*regexp.Regexp{refusedLogin, missingObject} {
		if permanent.MatchString(msg) {
			return false
		}
	}
	for _, broke := range []string{
		"server closed the connection unexpectedly", "could not connect to server", "Connection refused",
		"could not receive data from server", "could not send data to server", "no connection to the server",
		"terminating connection due to administrator command", "the database system is starting up",
		"the database system is shutting down", "the database system is in recovery mode",
		"SSL SYSCALL error", "Connection reset by peer", "connection timed out", "Connection timed out",
		"lost synchronization with server", "server terminated abnormally", "connection to server at",
		"terminating connection because of crash of another server process",
		// pgx's, when the connection ends under a query.
		"failed to receive message", "conn closed", "failed to write",
	} {
		if strings.Contains(msg, broke) {
			return true
		}
	}
	return false
}

// Messages of a login or a database the server refuses: the inputs' fault, not the way's.
var (
	refusedLogin  = regexp.MustCompile(`password authentication failed|no pg_hba\.conf entry|authentication failed|permission denied`)
	missingObject = regexp.MustCompile(`(database|role) "[^"]*" does not exist`)
	// notOwner is the role lacking a privilege on what it restores over: db-user's fault.
	notOwner = regexp.MustCompile(`must be owner of|permission denied for`)
)

// ErrInput marks a failure that is the input's fault (the database named does not exist, the
// login is refused, the role may not do what it must): refused, not retried.
var ErrInput = errors.New("the database refused the inputs")

// Refused reports whether err means the run was refused for its inputs or what the preflight
// checks (a bundle that does not match its manifest, a server older than the dump's, no
// suitable client tools, a login or database the server refuses, a privilege the role
// lacks), with the database unchanged. Any other failure (the way to the database broke, a
// lock was held) is not the input's fault.
func Refused(err error) bool {
	if errors.Is(err, bundle.ErrRefused) || errors.Is(err, ErrOlderServer) || errors.Is(err, ErrNoClient) || errors.Is(err, ErrInput) {
		return true
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return inputCode(pgErr.Code)
	}
	if te, ok := errors.AsType[*toolError](err); ok {
		return refusedLogin.MatchString(te.stderr) || missingObject.MatchString(te.stderr) || notOwner.MatchString(te.stderr)
	}
	return false
}

// inputCode reports whether a SQLSTATE refuses what the inputs name: the login, the
// database, a privilege.
func inputCode(code string) bool {
	switch code {
	case "28P01", "28000", "3D000", "42501":
		return true
	}
	return false
}
