package rehearsal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// Digest is the content of a database, listed one object a line in a fixed order, and the
// SHA-256 of that listing. Two databases with the same Sum hold the same rows in the same
// tables, with the same columns, constraints, indexes, sequences, views, functions and owners.
type Digest struct {
	Sum   string
	Lines []string
}

// Short is the digest's first 12 hex digits, for the narration.
func (d Digest) Short() string { return d.Sum[:min(12, len(d.Sum))] }

// Tables is how many tables the listing covers.
func (d Digest) Tables() int {
	n := 0
	for _, l := range d.Lines {
		if strings.HasPrefix(l, "table|") {
			n++
		}
	}
	return n
}

// Diff returns the lines of d that other lacks and those of other that d lacks, marked - and +.
func (d Digest) Diff(other Digest) []string {
	var out []string
	for _, l := range d.Lines {
		if !slices.Contains(other.Lines, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range other.Lines {
		if !slices.Contains(d.Lines, l) {
			out = append(out, "+ "+l)
		}
	}
	return out
}

// contentDigest reads the digest of the database's public schema: every table's row count and
// the md5 of its rows as text in sorted order, and the definitions around them.
func contentDigest(ctx context.Context, db testworld.Database) (Digest, error) {
	out, err := db.Run(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		return Digest{}, fmt.Errorf("list the tables: %w", err)
	}
	queries := []string{
		`SELECT 'column', table_name || '.' || column_name, data_type || ' ' || is_nullable || coalesce(' default ' || column_default, '') FROM information_schema.columns WHERE table_schema = 'public'`,
		`SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace`,
		`SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'`,
		`SELECT 'sequence', sequencename, coalesce(last_value::text, 'not called') FROM pg_sequences WHERE schemaname = 'public'`,
		`SELECT 'view', viewname, md5(definition) FROM pg_views WHERE schemaname = 'public'`,
		`SELECT 'function', p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')`,
		`SELECT 'owner', relname, pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v', 'm')`,
	}
	for _, name := range strings.Fields(out) {
		queries = append(queries, fmt.Sprintf(
			`SELECT 'table', %s, count(*) || ' rows, md5 ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM public.%s t`,
			quoteLiteral(name), quoteIdent(name)))
	}
	out, err = db.Run(ctx, "SELECT * FROM (\n"+strings.Join(queries, "\nUNION ALL\n")+"\n) d ORDER BY 1, 2, 3")
	if err != nil {
		return Digest{}, fmt.Errorf("read the content: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return Digest{Sum: hex.EncodeToString(sum[:]), Lines: lines}, nil
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// schemaState says where Keycloak's schema is: its Liquibase changesets and the newest
// migration model version.
func schemaState(ctx context.Context, db testworld.Database) (string, error) {
	out, err := db.Run(ctx, `SELECT count(*) || ' changesets (latest "' ||
		coalesce((SELECT id FROM databasechangelog ORDER BY orderexecuted DESC LIMIT 1), '') ||
		'"), migration model ' ||
		coalesce((SELECT version FROM migration_model ORDER BY update_time DESC LIMIT 1), 'none')
		FROM databasechangelog`)
	if err != nil {
		return "", fmt.Errorf("read the schema state: %w", err)
	}
	return strings.TrimSpace(out), nil
}
