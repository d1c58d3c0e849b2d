package pgbackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var pgVersion = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// ClientVersion runs `<tool> --version` (pg_dump, pg_restore, psql) and returns its version
// string and major number.
func ClientVersion(ctx context.Context, tool string) (string, int, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "--version")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", 0, fmt.Errorf("%s --version: %w: %s", tool, err, bytes.TrimSpace(stderr.Bytes()))
	}
	m := pgVersion.FindSubmatch(out.Bytes())
	if m == nil {
		return "", 0, fmt.Errorf("%s --version: unrecognised output %q", tool, bytes.TrimSpace(out.Bytes()))
	}
	major, _ := strconv.Atoi(string(m[1]))
	version := string(m[1])
	if len(m[2]) > 0 {
		version += "." + string(m[2])
	}
	return version, major, nil
}

// Inspector reads the database facts the preflight records, and chooses the client tools
// that back it up and restore it (pg_dump at least the server's major).
type Inspector struct {
	// ConnString is a postgres:// URL or key=value DSN; it may carry the password.
	ConnString string
	// Clients finds the client tools (the pg-bin-dir input, or the best installed).
	Clients ClientChooser
	// Session tags its session, bounds its lock waits and retries its connection check when
	// the way to the database breaks.
	Session Session
}

// Inspect implements rollout.DatabaseInspector. With no suitable client tools it still returns
// the server's facts, and says why in ClientProblem: the plan refuses the upgrade with it.
func (i Inspector) Inspect(ctx context.Context) (rollout.Database, error) {
	db, _, err := i.inspect(ctx)
	return db, err
}

func (i Inspector) inspect(ctx context.Context) (rollout.Database, Client, error) {
	info, err := i.Session.inspect(ctx, i.ConnString)
	if err != nil {
		return rollout.Database{}, Client{}, err
	}
	db := rollout.Database{
		ServerVersion: info.ServerVersion, ServerMajor: info.Major(), Name: info.Database,
		SizeBytes: info.SizeBytes, Tables: info.Tables, Schema: info.Schema,
	}
	client, err := i.Clients.Choose(ctx, info.Major(), 0)
	if errors.Is(err, ErrNoClient) {
		db.ClientProblem = err.Error()
		return db, client, nil
	}
	if err != nil {
		return rollout.Database{}, Client{}, err
	}
	db.PgDumpVersion, db.PgDumpMajor, db.ClientDir = client.Version, client.Major, client.Dir
	return db, client, nil
}
