package pgbackup

import (
	"bytes"
	"strings"
	"testing"
)

// TestFilterPlain filters a small plain dump: the seed statements go, COPY data stays as it is
// even where a row looks like a statement, and with freeze each COPY statement (and only
// those) loads its rows frozen.
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
`
	for _, freeze := range []bool{false, true} {
		var out bytes.Buffer
		complete, err := filterPlain(&out, strings.NewReader(dump), freeze)
		if err != nil || !complete {
			t.Fatalf("freeze=%v: complete %v, err %v", freeze, complete, err)
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
			"-- PostgreSQL database dump complete\n"
		if out.String() != want {
			t.Errorf("freeze=%v: filtered\n%s\nwant\n%s", freeze, out.String(), want)
		}
	}
	if complete, _ := filterPlain(&bytes.Buffer{}, strings.NewReader(dump[:len(dump)-10]), true); complete {
		t.Error("a dump cut before its trailer counts as complete")
	}
}
