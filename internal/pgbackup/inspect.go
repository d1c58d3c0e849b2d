// Package pgbackup is the project's only PostgreSQL client: the preflight's checks and
// Keycloak's schema state through pgx; the choice of client tools for a server; the dump
// streamed from pg_dump into a bundle (the vendor's filter, zstd, age, sha256, the rows of
// every table counted as they pass) and the restore streamed from one through
// pg_restore/psql into a transaction that commits only when the rows match; whether the
// database changed since a backup (drift) and whether it equals one (verify); and Engine,
// the pipeline's database port. The bundle's format is package bundle's.
package pgbackup

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// ServerInfo is what the preflight learns about the database before anything changes.
type ServerInfo struct {
	// ServerVersion is the server's version string; ServerVersionNum its number (150014).
	ServerVersion    string
	ServerVersionNum int
	Database         string
	SizeBytes        int64
	Tables           int
	Schema           SchemaState
}

// Major returns the server's major version (15 for 150014).
func (s ServerInfo) Major() int { return s.ServerVersionNum / 10000 }

// SchemaState is Keycloak's migration state: Liquibase's changelog and, when present,
// Keycloak's own migration model.
type SchemaState = rollout.SchemaState

// Inspect connects with connString (a postgres:// URL or key=value DSN) and reads the facts
// the preflight records.
func Inspect(ctx context.Context, connString string) (ServerInfo, error) {
	return Session{Retry: Retry{Attempts: 1}}.inspect(ctx, connString)
}

// inspect is Inspect on a session of s, the connection check retried as s says.
func (s Session) inspect(ctx context.Context, connString string) (ServerInfo, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return ServerInfo{}, errors.New("parse database connection string: invalid (check database-url or the db-* inputs)")
	}
	var info ServerInfo
	err = s.retry(ctx, "connection check", func() string { return s.route(cfg) }, false, func(ctx context.Context, n int) error {
		conn, err := s.connect(ctx, connString, "inspect", n)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		info, err = readServerInfo(ctx, conn)
		return err
	})
	return info, err
}

func readServerInfo(ctx context.Context, conn *pgx.Conn) (ServerInfo, error) {
	var info ServerInfo
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version'),
		current_setting('server_version_num')::int,
		current_database(),
		pg_database_size(current_database()),
		(SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))`,
	).Scan(&info.ServerVersion, &info.ServerVersionNum, &info.Database, &info.SizeBytes, &info.Tables)
	if err != nil {
		return ServerInfo{}, fmt.Errorf("read server facts: %w", err)
	}
	info.Schema, err = schemaState(ctx, conn)
	if err != nil {
		return ServerInfo{}, err
	}
	return info, nil
}

// schemaState reads Keycloak's migration tables. Their names are looked up case-insensitively:
// Liquibase creates them upper-case on some databases.
func schemaState(ctx context.Context, conn *pgx.Conn) (SchemaState, error) {
	var s SchemaState
	changelog, err := findTable(ctx, conn, "databasechangelog")
	if err != nil || changelog == "" {
		return s, err
	}
	err = conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce((SELECT id FROM %s ORDER BY orderexecuted DESC, dateexecuted DESC LIMIT 1), '') FROM %[1]s`, changelog)).
		Scan(&s.ChangelogRows, &s.LatestChangeID)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", changelog, err)
	}
	migration, err := findTable(ctx, conn, "migration_model")
	if err != nil || migration == "" {
		return s, err
	}
	err = conn.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce((SELECT version FROM %s ORDER BY update_time DESC NULLS LAST, version DESC LIMIT 1), '')`, migration)).
		Scan(&s.MigrationVersion)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", migration, err)
	}
	return s, nil
}

// findTable returns the quoted, schema-qualified name of the visible table called name in any
// letter case, or "" when there is none.
func findTable(ctx context.Context, conn *pgx.Conn, name string) (string, error) {
	var qualified string
	err := conn.QueryRow(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE lower(c.relname) = $1 AND c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid)
		ORDER BY c.relname = $1 DESC LIMIT 1`, name).Scan(&qualified)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up table %s: %w", name, err)
	}
	return qualified, nil
}
