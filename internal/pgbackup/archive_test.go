package pgbackup

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// countRows counts the rows of db's tables with rowCounts.
func countRows(t testing.TB, db testworld.Database) map[string]int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), db.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	counts, err := rowCounts(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}
