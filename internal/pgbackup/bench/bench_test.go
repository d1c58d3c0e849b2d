package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchSmall runs the whole benchmark on tiny databases, so that `go test ./...` exercises
// it: generation, every contestant, the restores' row-count checks and the report. The figures
// of so small a run mean nothing; only failures count.
func TestBenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts PostgreSQL")
	}
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-db-mb=20", "-small-mb=14", "-runs=1"}, func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"== 14 MiB target", "== 20 MiB target", rawDump, vendorDump, oursPlain, oursCustom,
		vendorPsql, oursRestoreC, "peak RSS growth"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	t.Log("\n" + out)
}
