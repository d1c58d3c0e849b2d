package pgbackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// Tools names the PostgreSQL client programs; empty fields mean the program of that name on PATH.
type Tools struct {
	PgDump    string
	PgRestore string
	Psql      string
}

func (t Tools) pgDump() string    { return orDefault(t.PgDump, "pg_dump") }
func (t Tools) pgRestore() string { return orDefault(t.PgRestore, "pg_restore") }
func (t Tools) psql() string      { return orDefault(t.Psql, "psql") }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// connEnv turns a connection string into the libpq environment of a child process, so that
// neither the password nor the URL ever appears in its arguments. It returns the child's whole
// environment: this process's, without the libpq variables it replaces, plus the connection.
func connEnv(connString string) ([]string, *pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		// pgconn's parse errors may quote the string; never show it.
		return nil, nil, errors.New("parse database connection string: invalid (check database-url or the db-* inputs)")
	}
	replaced := []string{"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD",
		"PGSSLMODE", "PGSERVICE", "PGCONNECT_TIMEOUT", "PGOPTIONS"}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(replaced, name) {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PGHOST="+cfg.Host,
		"PGPORT="+strconv.Itoa(int(cfg.Port)),
		"PGDATABASE="+cfg.Database,
		"PGUSER="+cfg.User,
		"PGSSLMODE="+sslMode(cfg),
	)
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	if cfg.ConnectTimeout > 0 {
		env = append(env, "PGCONNECT_TIMEOUT="+strconv.Itoa(max(1, int(cfg.ConnectTimeout.Seconds()))))
	}
	return env, cfg, nil
}

// sslMode recovers libpq's sslmode from what pgconn made of it: pgconn keeps the TLS
// configuration and the fallbacks, not the word.
func sslMode(cfg *pgconn.Config) string {
	plainFallback, tlsFallback := false, false
	for _, f := range cfg.Fallbacks {
		if f.Host != cfg.Host || f.Port != cfg.Port {
			continue
		}
		if f.TLSConfig == nil {
			plainFallback = true
		} else {
			tlsFallback = true
		}
	}
	switch t := cfg.TLSConfig; {
	case t == nil && tlsFallback:
		return "allow"
	case t == nil:
		return "disable"
	case plainFallback:
		return "prefer"
	case t.InsecureSkipVerify && t.VerifyPeerCertificate == nil:
		return "require"
	case t.InsecureSkipVerify:
		return "verify-ca"
	default:
		return "verify-full"
	}
}

// stderrTail keeps the last bytes a child wrote to stderr, for error messages.
type stderrTail struct {
	mu  sync.Mutex
	buf []byte
}

const stderrKeep = 4096

func (s *stderrTail) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	if len(s.buf) > 2*stderrKeep {
		s.buf = append(s.buf[:0], s.buf[len(s.buf)-stderrKeep:]...)
	}
	return len(p), nil
}

// String returns the last lines written, trimmed.
func (s *stderrTail) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf
	if len(b) > stderrKeep {
		b = b[len(b)-stderrKeep:]
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// command builds a PostgreSQL client command: arguments as a slice, connection in the env.
func command(ctx context.Context, tool string, env []string, args ...string) (*exec.Cmd, *stderrTail) {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = env
	tail := &stderrTail{}
	cmd.Stderr = tail
	return cmd, tail
}

// toolError is a client program that failed, with the end of what it wrote to stderr: the
// only account of why (a broken connection, a refused login, an SQL error).
type toolError struct {
	tool   string
	err    error
	stderr string
}

func (e *toolError) Error() string {
	if e.stderr != "" {
		return fmt.Sprintf("%s: %v: %s", e.tool, e.err, e.stderr)
	}
	return fmt.Sprintf("%s: %v", e.tool, e.err)
}

func (e *toolError) Unwrap() error { return e.err }

// runErr describes a finished child's failure with its stderr tail.
func runErr(tool string, err error, tail *stderrTail) error {
	return &toolError{tool: tool, err: err, stderr: tail.String()}
}

// run runs a command to completion, returning its stdout.
func run(ctx context.Context, tool string, env []string, args ...string) ([]byte, error) {
	cmd, tail := command(ctx, tool, env, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), runErr(tool, err, tail)
	}
	return out.Bytes(), nil
}
