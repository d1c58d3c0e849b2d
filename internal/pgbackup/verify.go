package pgbackup

import (
	"crypto/rand"
	"encoding/json"
	"strings"
)

// rowCheckMark starts the message of the error that rowCheckSQL raises.
const rowCheckMark = "identity-upgrade row check: "

// rowCheckSQL is a statement that a streamed restore (a plain dump, or a custom one through
// pg_restore) runs in its transaction, after the dump and before COMMIT: it compares every table outside the system schemas with want (the manifest's
// row counts) and raises an error, which psql's ON_ERROR_STOP turns into a restore that never
// commits, when a table is missing, extra, or has other rows. A table the transaction created
// is not read again: its rows are the rows the transaction inserted into it, the server's own
// count (pg_stat_xact_user_tables.n_tup_ins, which COPY counts); any other table (a partitioned
// one, whose rows are in its partitions, or one the transaction did not create) is counted with
// count(*). The statement and the literal are dollar-quoted with random tags, so no table name
// can end them. It runs on every server from PostgreSQL 11 on: the transaction's id comes from
// txid_current() (its low 32 bits are the xid that pg_class.xmin holds), not from
// pg_current_xact_id(), which PostgreSQL 13 added.
func rowCheckSQL(want map[string]int64) string {
	if want == nil {
		want = map[string]int64{}
	}
	data, _ := json.Marshal(want) // a map of strings to numbers always marshals
	tag := func(name string) string { return "$" + name + "_" + strings.ToLower(rand.Text()) + "$" }
	body, literal := tag("check"), tag("want")
	return strings.NewReplacer("BODY", body, "WANT", literal+string(data)+literal, "MARK", rowCheckMark).Replace(`DO BODY
DECLARE
  want jsonb := WANT;
  this_xact xid := (pg_catalog.txid_current() % 4294967296)::text::xid;
  t record;
  n bigint;
  seen text[] := '{}';
  diff text[] := '{}';
BEGIN
  FOR t IN
    SELECT c.oid, c.relkind, c.xmin = this_xact AS created, n.nspname, c.relname,
      CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END AS key
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 6
  LOOP
    IF t.relkind = 'r' AND t.created THEN
      SELECT s.n_tup_ins INTO n FROM pg_catalog.pg_stat_xact_user_tables s WHERE s.relid = t.oid;
      n := coalesce(n, 0);
    ELSE
      EXECUTE pg_catalog.format('SELECT count(*) FROM %I.%I', t.nspname, t.relname) INTO n;
    END IF;
    seen := seen || t.key;
    IF NOT want ? t.key THEN
      diff := diff || pg_catalog.format('%s is not in the backup', t.key);
    ELSIF (want ->> t.key)::bigint <> n THEN
      diff := diff || pg_catalog.format('%s has %s rows, want %s', t.key, n, want ->> t.key);
    END IF;
  END LOOP;
  FOR t IN SELECT k FROM pg_catalog.jsonb_object_keys(want) k WHERE k <> ALL (seen) ORDER BY 1 LOOP
    diff := diff || pg_catalog.format('%s missing', t.k);
  END LOOP;
  IF pg_catalog.cardinality(diff) > 0 THEN
    RAISE EXCEPTION 'MARK%', pg_catalog.array_to_string(diff, '; ');
  END IF;
END
BODY;
`)
}

// rowCheckFailure returns the differences a failed rowCheckSQL reported in psql's error
// output, or "" when the output is not its error.
func rowCheckFailure(stderr string) string {
	_, rest, ok := strings.Cut(stderr, rowCheckMark)
	if !ok {
		return ""
	}
	diff, _, _ := strings.Cut(rest, "\n")
	return strings.TrimSpace(diff)
}
