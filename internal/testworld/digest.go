package testworld

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Digest is the full content of a database's public schema, listed one object a line in a
// fixed order, and the SHA-256 of that listing: every table's row count and the md5 of its
// rows as text in sorted order, and the columns, constraints, indexes, sequence values, views
// and functions around them (with the tables' owners when asked). Two databases with the same
// Sum hold the same content. Every test that compares databases compares digests.
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

// ContentDigest reads the digest of the database; with owners, the owner of every table,
// sequence and view is part of it (databases of different owners then differ).
func (db Database) ContentDigest(ctx context.Context, owners bool) (Digest, error) {
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
	}
	if owners {
		queries = append(queries, `SELECT 'owner', relname, pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v', 'm')`)
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

// Digest is ContentDigest for a test, without the owners; a failure to read it fails the test.
func (db Database) Digest(t testing.TB) Digest {
	t.Helper()
	d, err := db.ContentDigest(t.Context(), false)
	if err != nil {
		t.Fatalf("digest of database %s: %v", db.Database, err)
	}
	return d
}

// String is the digest's sum and size, for a message.
func (d Digest) String() string { return fmt.Sprintf("%s (%d lines)", d.Sum, len(d.Lines)) }

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
