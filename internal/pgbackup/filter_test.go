package pgbackup

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// TestFilterPlain filters a small plain dump: the seed statements go, COPY data stays as it is
// even where a row looks like a statement, each table's rows are counted, and with freeze each
// COPY statement (and only those) loads its rows frozen.
func TestFilterPlain(t *testing.T) {
	const dump = `SET client_encoding = 'UTF8';
DROP SCHEMA IF EXISTS public;
CREATE SCHEMA public;
COMMENT ON SCHEMA public IS 'standard public schema';
CREATE TABLE public.t (a text);
COPY public.t (a) FROM stdin;
CREATE SCHEMA public;
COPY public.u (a) FROM stdin;
\.
COPY public.v (a) FROM stdin;
\.
-- PostgreSQL database dump complete
\unrestrict k3y
`
	for _, freeze := range []bool{false, true} {
		var out bytes.Buffer
		d, err := filterPlain(&out, strings.NewReader(dump), filterOptions{freeze: freeze})
		if err != nil || !d.complete {
			t.Fatalf("freeze=%v: complete %v, err %v", freeze, d.complete, err)
		}
		copyStmt := func(table string) string {
			if freeze {
				return "COPY public." + table + " (a) FROM stdin WITH (FREEZE);\n"
			}
			return "COPY public." + table + " (a) FROM stdin;\n"
		}
		want := "SET client_encoding = 'UTF8';\nCREATE TABLE public.t (a text);\n" +
			copyStmt("t") +
			"CREATE SCHEMA public;\nCOPY public.u (a) FROM stdin;\n\\.\n" + // rows of t
			copyStmt("v") + "\\.\n" +
			"-- PostgreSQL database dump complete\n\\unrestrict k3y\n"
		if out.String() != want {
			t.Errorf("freeze=%v: filtered\n%s\nwant\n%s", freeze, out.String(), want)
		}
		if want := map[string]int64{"t": 2, "v": 0}; !maps.Equal(d.rows, want) {
			t.Errorf("freeze=%v: rows %v, want %v", freeze, d.rows, want)
		}
	}
	if d, _ := filterPlain(&bytes.Buffer{}, strings.NewReader(dump[:len(dump)-10]), filterOptions{freeze: true}); d.complete {
		t.Error("a dump cut before its trailer counts as complete")
	}
}

// TestFilterPlainPieces feeds a dump with many rows, a row longer than the filter's buffer and
// a data row that looks like a seed statement through readers that return a byte, or half a
// buffer, at a time: whatever the pieces, the output is the same and the rows are counted.
func TestFilterPlainPieces(t *testing.T) {
	var dump, want strings.Builder
	head := "\\restrict k3y\nSET client_encoding = 'UTF8';\nCREATE SCHEMA public;\n"
	dump.WriteString(head)
	want.WriteString("\\restrict k3y\nSET client_encoding = 'UTF8';\n")
	tables := map[string]int64{"user_attribute": 30000, `odd"name`: 3, "other.event_entity": 1, "x y.t": 0}
	stmts := map[string]string{"user_attribute": "public.user_attribute", `odd"name`: `public."odd""name"`,
		"other.event_entity": "other.event_entity", "x y.t": `"x y".t`}
	for _, key := range slices.Sorted(maps.Keys(tables)) {
		stmt := "COPY " + stmts[key] + " (a, b) FROM stdin;\n"
		dump.WriteString(stmt)
		want.WriteString(stmt)
		for i := range tables[key] {
			var row string
			switch {
			case key == `odd"name` && i == 0:
				row = strings.Repeat("\\\\x00ff", 400000) + "\t1\n" // 2.8 MB, longer than the buffer
			case key == `odd"name` && i == 1:
				row = "CREATE SCHEMA public;\n"
			default:
				row = fmt.Sprintf("%d\tvalue %d with a tab\\tand a newline\\n\n", i, i)
			}
			dump.WriteString(row)
			want.WriteString(row)
		}
		dump.WriteString("\\.\n")
		want.WriteString("\\.\n")
	}
	dump.WriteString("\n--\n-- PostgreSQL database dump complete\n--\n\n")
	want.WriteString("\n--\n-- PostgreSQL database dump complete\n--\n\n")

	readers := map[string]func(io.Reader) io.Reader{
		"whole":     func(r io.Reader) io.Reader { return r },
		"bytes":     iotest.OneByteReader,
		"half":      iotest.HalfReader,
		"data-err":  iotest.DataErrReader,
		"64k-piece": func(r io.Reader) io.Reader { return &pieceReader{r, 64 << 10} },
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			d, err := filterPlain(&out, wrap(strings.NewReader(dump.String())), filterOptions{})
			if err != nil || !d.complete {
				t.Fatalf("complete %v, err %v", d.complete, err)
			}
			if out.String() != want.String() {
				t.Errorf("output differs from the input at byte %d", firstDiff(out.String(), want.String()))
			}
			if !maps.Equal(d.rows, tables) {
				t.Errorf("rows %v, want %v", d.rows, tables)
			}
		})
	}
}

// pieceReader returns at most n bytes per read.
type pieceReader struct {
	r io.Reader
	n int
}

func (p *pieceReader) Read(b []byte) (int, error) { return p.r.Read(b[:min(len(b), p.n)]) }

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestCopyTable(t *testing.T) {
	for stmt, want := range map[string]string{
		"COPY public.realm (id, name) FROM stdin;\n":        "realm",
		"COPY public.\"User\" (id) FROM stdin;\n":           "User",
		"COPY \"my schema\".\"a.b\" (id) FROM stdin;\n":     "my schema.a.b",
		"COPY public.\"say \"\"hi\"\"\" (id) FROM stdin;\n": `say "hi"`,
		"COPY audit.event_entity (id) FROM stdin;\n":        "audit.event_entity",
		"COPY odd (id) FROM stdin;\n":                       "COPY odd (id) FROM stdin;\n",
		"COPY public.\"unterminated (id) FROM stdin;\n":     "COPY public.\"unterminated (id) FROM stdin;\n",
		"COPY public.\"\" (id) FROM stdin;\n":               "COPY public.\"\" (id) FROM stdin;\n",
		"COPY public.t_1$x FROM stdin;\n":                   "t_1$x",
	} {
		if got := copyTable([]byte(stmt)); got != want {
			t.Errorf("copyTable(%q) = %q, want %q", stmt, got, want)
		}
	}
}

// BenchmarkFilterPlain filters 64 MiB of COPY rows shaped like user_attribute's.
func BenchmarkFilterPlain(b *testing.B) {
	var dump bytes.Buffer
	dump.WriteString("COPY public.user_attribute (name, value, user_id, id) FROM stdin;\n")
	for i := 0; dump.Len() < 64<<20; i++ {
		fmt.Fprintf(&dump, "attribute-%d\tvalue of attribute %d for the user\t%08x-1c2d-4e5f-8a9b-0c1d2e3f4a5b\t%08x-aaaa-4bbb-8ccc-dddddddddddd\n", i%7, i, i, i)
	}
	dump.WriteString("\\.\n-- PostgreSQL database dump complete\n")
	b.SetBytes(int64(dump.Len()))
	for b.Loop() {
		if _, err := filterPlain(io.Discard, bytes.NewReader(dump.Bytes()), filterOptions{freeze: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFilterPlainHeaderSettings drops the header's session settings that the target server
// does not know, in both spellings pg_dump uses, and nothing else: a custom setting (its name
// has a dot, and every server takes it), and a statement or COPY row that looks like a setting
// after the header, stay.
func TestFilterPlainHeaderSettings(t *testing.T) {
	const dump = `--
-- PostgreSQL database dump
--

\restrict k3y

SET statement_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
SELECT pg_catalog.set_config('made_up.setting', 'x', false);
SELECT pg_catalog.set_config('idle_session_timeout', '0', false);
SET row_security = off;

CREATE TABLE public.t (a text);
SET transaction_timeout = 0;
COPY public.t (a) FROM stdin;
SET transaction_timeout = 0;
\.
-- PostgreSQL database dump complete
`
	known := map[string]bool{"statement_timeout": true, "client_encoding": true, "search_path": true, "row_security": true}
	var out bytes.Buffer
	d, err := filterPlain(&out, strings.NewReader(dump), filterOptions{settings: known})
	if err != nil || !d.complete {
		t.Fatalf("complete %v, err %v", d.complete, err)
	}
	if want := []string{"transaction_timeout", "idle_session_timeout"}; !slices.Equal(d.dropped, want) {
		t.Errorf("dropped %q, want %q", d.dropped, want)
	}
	want := strings.Replace(strings.Replace(dump, "SET transaction_timeout = 0;\n", "", 1),
		"SELECT pg_catalog.set_config('idle_session_timeout', '0', false);\n", "", 1)
	if out.String() != want {
		t.Errorf("filtered\n%s\nwant\n%s", out.String(), want)
	}

	// Into an older server, such settings go wherever a statement starts, each named once.
	out.Reset()
	d, err = filterPlain(&out, strings.NewReader(dump), filterOptions{settings: known, settingsAnywhere: true})
	if err != nil || !slices.Equal(d.dropped, []string{"transaction_timeout", "idle_session_timeout"}) {
		t.Errorf("anywhere: dropped %q, err %v", d.dropped, err)
	}
	if want := strings.Replace(want, "CREATE TABLE public.t (a text);\nSET transaction_timeout = 0;\n", "CREATE TABLE public.t (a text);\n", 1); out.String() != want {
		t.Errorf("anywhere: filtered\n%s\nwant\n%s", out.String(), want)
	}

	// Without the server's settings nothing is dropped.
	out.Reset()
	if d, err := filterPlain(&out, strings.NewReader(dump), filterOptions{}); err != nil || len(d.dropped) > 0 || out.String() != dump {
		t.Errorf("no settings given: dropped %q, err %v, output changed %v", d.dropped, err, out.String() != dump)
	}
}
