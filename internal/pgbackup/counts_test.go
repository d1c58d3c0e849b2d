package pgbackup

import (
	"context"
	"maps"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestDumpCountsRows dumps, in both formats, tables whose names pg_dump must quote, a table
// outside public, rows with escaped newlines, tabs and backslashes, a row longer than every
// buffer on the way, an empty table and a partitioned table: the rows the stream counts are
// count(*)'s for every table whose data the dump holds, and the manifest of a backup has
// count(*)'s for every table, the partitioned one (whose data is in its partitions) included;
// restored, every table has its rows.
func TestDumpCountsRows(t *testing.T) {
	t.Parallel()
	db := testworld.Postgres(t)
	db.Exec(t, "SET ROLE "+db.Owner+`;
		CREATE TABLE "Odd Name" (v text);
		INSERT INTO "Odd Name" SELECT 'line ' || g || E'\nnext\tcolumn\\' FROM generate_series(1, 500) g;
		INSERT INTO "Odd Name" VALUES (repeat(E'a\nb\\c\t', 400000)), (''), (NULL);
		CREATE SCHEMA other;
		CREATE TABLE other."x.y" (v int);
		INSERT INTO other."x.y" SELECT generate_series(1, 3);
		CREATE TABLE "say ""hi""" (v int);
		INSERT INTO "say ""hi""" VALUES (1);
		CREATE TABLE empty_table (v int);
		CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
		CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
		CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (200);
		INSERT INTO parted SELECT g, 'p' || g FROM generate_series(0, 149) g;`)
	want := countRows(t, db)
	if want["Odd Name"] != 503 || want["other.x.y"] != 3 || want[`say "hi"`] != 1 || want["parted"] != 150 || want["parted_low"] != 100 {
		t.Fatalf("fixture: %v", want)
	}
	inDump := maps.Clone(want)
	delete(inDump, "parted")

	env, _, err := connEnv(db.URL())
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{bundle.FormatPlain, bundle.FormatCustom} {
		t.Run(format, func(t *testing.T) {
			conn, err := pgx.Connect(t.Context(), db.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.WithoutCancel(t.Context()))
			tx, err := conn.BeginTx(t.Context(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.WithoutCancel(t.Context()))
			var snapshot string
			if err := tx.QueryRow(t.Context(), "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
				t.Fatal(err)
			}
			dumped, err := dumpTo(t.Context(), dumpRequest{Path: filepath.Join(t.TempDir(), "dump"), Format: format, Snapshot: snapshot, Env: env, PgDumpMajor: 15})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(dumped.Rows, inDump) {
				t.Errorf("counted in the stream: %v\nwant %v", dumped.Rows, inDump)
			}

			b, err := Backup(t.Context(), filepath.Join(t.TempDir(), "bundle"), BackupOptions{ConnString: db.URL(), Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(b.Manifest.RowCounts, want) {
				t.Errorf("manifest: %v\nwant %v", b.Manifest.RowCounts, want)
			}

			// Restored, the tables have their rows again (a streamed restore, either format,
			// checks them before it commits: the rows its transaction inserted and, for the
			// partitioned table, count(*)).
			dst := testworld.Postgres(t)
			if _, err := Restore(t.Context(), b.Dir, RestoreOptions{ConnString: dst.URL()}); err != nil {
				t.Fatal(err)
			}
			if got := countRows(t, dst); !maps.Equal(got, want) {
				t.Errorf("restored: %v\nwant %v", got, want)
			}
		})
	}
}
