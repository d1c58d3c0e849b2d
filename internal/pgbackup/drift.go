package pgbackup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/jackc/pgx/v5"
)

// schemaDigestSQL digests the definitions of everything outside the system schemas that a
// restore puts back, so that DDL (a column added, an index dropped, a function replaced) is
// seen even where no row changed. It reads catalogs only, which are small.
const schemaDigestSQL = `
WITH ns AS (
  SELECT oid, nspname FROM pg_catalog.pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
), rel AS (
  SELECT c.oid, ns.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
)
SELECT coalesce(md5(string_agg(d, E'\n' ORDER BY d)), '') FROM (
  SELECT pg_catalog.format('schema %I', nspname) FROM ns
  UNION ALL
  SELECT pg_catalog.format('rel %I.%I %s', nspname, relname, relkind) FROM rel
  UNION ALL
  SELECT pg_catalog.format('col %I.%I %s %I %s %s %s', r.nspname, r.relname, a.attnum, a.attname,
      pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), ''))
  FROM pg_catalog.pg_attribute a JOIN rel r ON r.oid = a.attrelid
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT pg_catalog.format('con %I.%I %I %s', r.nspname, r.relname, co.conname, pg_catalog.pg_get_constraintdef(co.oid))
  FROM pg_catalog.pg_constraint co JOIN rel r ON r.oid = co.conrelid
  UNION ALL
  SELECT pg_catalog.format('idx %s', pg_catalog.pg_get_indexdef(i.indexrelid))
  FROM pg_catalog.pg_index i JOIN rel r ON r.oid = i.indrelid
  UNION ALL
  SELECT pg_catalog.format('trg %s', pg_catalog.pg_get_triggerdef(t.oid))
  FROM pg_catalog.pg_trigger t JOIN rel r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT pg_catalog.format('view %I.%I %s', r.nspname, r.relname, pg_catalog.pg_get_viewdef(r.oid))
  FROM rel r WHERE r.relkind IN ('v', 'm')
  UNION ALL
  SELECT pg_catalog.format('fn %s %s', p.oid::pg_catalog.regprocedure, pg_catalog.md5(coalesce(p.prosrc, '')))
  FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace
  UNION ALL
  SELECT pg_catalog.format('type %I.%I %s', ns.nspname, t.typname, t.typtype)
  FROM pg_catalog.pg_type t JOIN ns ON ns.oid = t.typnamespace
) defs(d)`

// sequencesSQL reads every sequence's last value outside the system schemas.
const sequencesSQL = `SELECT schemaname, sequencename, coalesce(last_value::text, '')
	FROM pg_catalog.pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`

// querier is a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readContentState reads the content state in q's snapshot (call it inside the dump's
// snapshot transaction).
func readContentState(ctx context.Context, q querier) (bundle.ContentState, error) {
	var s bundle.ContentState
	if err := q.QueryRow(ctx, `SELECT txid_snapshot_xmin(txid_current_snapshot())::text::bigint`).Scan(&s.SnapshotXmin); err != nil {
		return s, fmt.Errorf("read the snapshot's xmin: %w", err)
	}
	var err error
	if s.Sequences, err = readSequences(ctx, q); err != nil {
		return s, err
	}
	if err := q.QueryRow(ctx, schemaDigestSQL).Scan(&s.SchemaDigest); err != nil {
		return s, fmt.Errorf("digest the schema: %w", err)
	}
	return s, nil
}

func readSequences(ctx context.Context, q querier) (map[string]string, error) {
	rows, err := q.Query(ctx, sequencesSQL)
	if err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var schema, name, value string
		if err := rows.Scan(&schema, &name, &value); err != nil {
			return nil, fmt.Errorf("read sequences: %w", err)
		}
		out[tableKey(schema, name)] = value
	}
	return out, rows.Err()
}

// maxXidDistance is how far (in transactions) the database may have moved on since the backup
// for its 32-bit row xids to be compared with the backup's snapshot; beyond it every change is
// assumed.
const maxXidDistance = 1 << 30

// contentChanges says what was written to the database since the backup whose manifest is m,
// or "" when nothing was: rows inserted or updated (a row version whose xmin is not older than
// the backup's snapshot), rows deleted (a table's row count), tables created or dropped,
// sequences moved, or definitions changed (the schema digest). It reads every table once
// (the xmin and count of each row, no content) in one repeatable-read snapshot. A bundle
// without a content state (written before it was recorded) cannot be compared: that is said,
// and counts as changed.
func contentChanges(ctx context.Context, conn *pgx.Conn, m *bundle.Manifest) (string, error) {
	if m.Content == nil {
		return "the backup holds no content state to compare with (an older bundle)", nil
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return "", fmt.Errorf("begin snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// age() counts from this transaction's view of the next xid, for the backup's xmin as
	// for each row's, so the two compare exactly.
	var distance int64
	err = tx.QueryRow(ctx, `SELECT txid_snapshot_xmax(txid_current_snapshot())::text::bigint - $1::bigint`, int64(m.Content.SnapshotXmin)).Scan(&distance)
	if err != nil {
		return "", fmt.Errorf("read the current xid: %w", err)
	}
	if distance < 0 || distance > maxXidDistance {
		return fmt.Sprintf("%d transactions ran since the backup, too many to compare row versions", distance), nil
	}
	var since int64
	if err := tx.QueryRow(ctx, `SELECT age(($1::bigint % 4294967296)::text::xid)`, int64(m.Content.SnapshotXmin)).Scan(&since); err != nil {
		return "", fmt.Errorf("read the backup's xid age: %w", err)
	}

	var changes []string
	tables, err := listTables(ctx, tx.Conn())
	if err != nil {
		return "", err
	}
	var written, deleted []string
	counts := map[string]int64{}
	for _, t := range tables {
		var n, newer int64
		// Partitioned tables hold no rows of their own: their partitions are listed too.
		err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE age(xmin) <= $1) FROM `+t.quoted, since).Scan(&n, &newer)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", t.key, err)
		}
		counts[t.key] = n
		if newer > 0 {
			written = append(written, fmt.Sprintf("%s (%d)", t.key, newer))
		}
		if want, ok := m.RowCounts[t.key]; ok && n != want && newer == 0 {
			deleted = append(deleted, fmt.Sprintf("%s (%d rows, %d in the backup)", t.key, n, want))
		}
	}
	if len(written) > 0 {
		changes = append(changes, "rows inserted or updated since the backup in "+strings.Join(written, ", "))
	}
	if len(deleted) > 0 {
		changes = append(changes, "rows deleted in "+strings.Join(deleted, ", "))
	}
	var added, dropped []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if _, ok := m.RowCounts[k]; !ok {
			added = append(added, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.RowCounts)) {
		if _, ok := counts[k]; !ok {
			dropped = append(dropped, k)
		}
	}
	if len(added) > 0 {
		changes = append(changes, "tables not in the backup: "+strings.Join(added, ", "))
	}
	if len(dropped) > 0 {
		changes = append(changes, "tables dropped: "+strings.Join(dropped, ", "))
	}

	defs, err := definitionChanges(ctx, tx, m.Content)
	if err != nil {
		return "", err
	}
	return strings.Join(append(changes, defs...), "; "), nil
}

// definitionChanges compares the sequences and the schema digest with a content state.
func definitionChanges(ctx context.Context, q querier, was *bundle.ContentState) ([]string, error) {
	var changes []string
	seqs, err := readSequences(ctx, q)
	if err != nil {
		return nil, err
	}
	var moved []string
	for _, k := range slices.Sorted(maps.Keys(seqs)) {
		if v, ok := was.Sequences[k]; !ok || v != seqs[k] {
			moved = append(moved, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(was.Sequences)) {
		if _, ok := seqs[k]; !ok {
			moved = append(moved, k+" (dropped)")
		}
	}
	if len(moved) > 0 {
		changes = append(changes, "sequences changed: "+strings.Join(moved, ", "))
	}

	var digest string
	if err := q.QueryRow(ctx, schemaDigestSQL).Scan(&digest); err != nil {
		return nil, fmt.Errorf("digest the schema: %w", err)
	}
	if digest != was.SchemaDigest {
		changes = append(changes, "definitions changed (tables, columns, indexes, constraints, triggers, routines or types)")
	}
	return changes, nil
}
