package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
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
		vendorPsql, oursRestoreC, "peak RSS growth", "CPU s", "the most its CPU s allow", "the least its CPU s allow"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	t.Log("\n" + out)
}

// TestBusyCPU checks the machine's CPU accounting behind the benchmark's "CPU s": a goroutine
// that spins for 300 ms adds at least most of that to the busy CPU-seconds, and a run's CPU
// cannot exceed its wall time on every CPU.
func TestBusyCPU(t *testing.T) {
	before, err := busyCPU()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
	}
	after, err := busyCPU()
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < 0.2 {
		t.Errorf("a 300 ms spin added %.2f busy CPU-seconds, want at least 0.2", got)
	}
	m, err := timed(t.Context(), nil, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
	if err != nil {
		t.Fatal(err)
	}
	if limit := m.wall.Seconds()*float64(runtime.NumCPU()) + 0.05; m.cpu <= 0 || m.cpu > limit {
		t.Errorf("a shell loop of %s took %.2f CPU-seconds, want more than 0 and at most %.2f", m.wall, m.cpu, limit)
	}
}
