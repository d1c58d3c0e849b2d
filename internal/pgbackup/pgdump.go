package pgbackup

import (
	"bytes"
	"context"
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

// Inspector reads the database facts the preflight records, including the version of the
// pg_dump that would take the backup.
type Inspector struct {
	// ConnString is a postgres:// URL or key=value DSN; it may carry the password.
	ConnString string
	// PgDump is the pg_dump to use (default "pg_dump" from PATH).
	PgDump string
}

// Inspect implements rollout.DatabaseInspector.
func (i Inspector) Inspect(ctx context.Context) (rollout.Database, error) {
	info, err := Inspect(ctx, i.ConnString)
	if err != nil {
		return rollout.Database{}, err
	}
	tool := i.PgDump
	if tool == "" {
		tool = "pg_dump"
	}
	version, major, err := ClientVersion(ctx, tool)
	if err != nil {
		return rollout.Database{}, err
	}
	return rollout.Database{
		ServerVersion: info.ServerVersion, ServerMajor: info.Major(), Name: info.Database,
		SizeBytes: info.SizeBytes, Tables: info.Tables, Schema: info.Schema,
		PgDumpVersion: version, PgDumpMajor: major,
	}, nil
}
