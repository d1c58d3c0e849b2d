package pgbackup

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Realms lists the Keycloak realms the database holds (its realm table), sorted by name; none
// when it has no realm table.
func Realms(ctx context.Context, connString string) ([]string, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('realm') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT name FROM realm ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list the realms: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
