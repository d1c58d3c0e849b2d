package progress

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects log lines; the Meter's goroutine writes into it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.b.String(), "\n"), "\n")
}

func newLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// fakeClock is a clock a test moves; each tick is handed over on an unbuffered channel, so
// the Meter has taken it when tick returns.
type fakeClock struct {
	mu  sync.Mutex
	t   time.Time
	c   chan time.Time
	off chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), c: make(chan time.Time), off: make(chan struct{})}
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) tick() { f.c <- f.now() }

// waitLines waits until the log has n lines: a tick's line is written after the tick was taken.
func waitLines(t *testing.T, buf *logBuffer, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := buf.lines()
		if len(l) >= n && l[0] != "" {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d log lines, have %q", n, l)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMeterLogsEveryTickAndAtTheEnd(t *testing.T) {
	var buf logBuffer
	clock := newFakeClock()
	m := start(t.Context(), newLogger(&buf), "upload progress",
		Options{Total: 100 << 20, Attrs: []any{"store", "oci"}, Status: func() []any { return []any{"phase", "one"} }},
		clock.now, clock.c, func() { close(clock.off) })

	w := m.Writer(io.Discard)
	w.Write(make([]byte, 10<<20))
	clock.advance(5 * time.Second)
	clock.tick()
	waitLines(t, &buf, 1)

	r := m.Reader(bytes.NewReader(make([]byte, 40<<20)))
	io.Copy(io.Discard, io.LimitReader(r, 40<<20)) // no EOF: the meter goes on
	clock.advance(2 * time.Second)
	clock.tick()
	waitLines(t, &buf, 2)

	m.Add(50 << 20)
	clock.advance(3 * time.Second)
	m.Stop()
	m.Stop() // once only
	select {
	case <-clock.off:
	default:
		t.Error("Stop did not stop the ticker")
	}

	want := []string{
		`level=INFO msg="upload progress" store=oci bytes=10.0MiB of=100MiB percent=10 rate=2.0MiB/s elapsed=5s phase=one`,
		`level=INFO msg="upload progress" store=oci bytes=50.0MiB of=100MiB percent=50 rate=20.0MiB/s elapsed=7s phase=one`,
		`level=INFO msg="upload progress" store=oci bytes=100MiB of=100MiB percent=100 rate=10.0MiB/s elapsed=10s phase=one done=true`,
	}
	got := waitLines(t, &buf, 3)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMeterStopsAtEOF(t *testing.T) {
	var buf logBuffer
	clock := newFakeClock()
	m := start(t.Context(), newLogger(&buf), "download progress", Options{}, clock.now, clock.c, func() { close(clock.off) })
	clock.advance(time.Second)
	n, err := io.Copy(io.Discard, m.Reader(strings.NewReader("twelve bytes")))
	if n != 12 || err != nil {
		t.Fatal(n, err)
	}
	<-clock.off // the EOF stopped it
	got := waitLines(t, &buf, 1)
	if want := `level=INFO msg="download progress" bytes=12B rate=12B/s elapsed=1s done=true`; len(got) != 1 || got[0] != want {
		t.Errorf("log %q, want %q", got, want)
	}
	m.Stop()
	if l := buf.lines(); len(l) != 1 {
		t.Errorf("a second Stop logged: %q", l)
	}
}

func TestMeterEndsWithItsContext(t *testing.T) {
	var buf logBuffer
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(t.Context())
	m := start(ctx, newLogger(&buf), "backup progress", Options{}, clock.now, clock.c, func() { close(clock.off) })
	cancel()
	<-clock.off // the goroutine ended without Stop
	m.Stop()
	if l := waitLines(t, &buf, 1); len(l) != 1 || !strings.HasSuffix(l[0], "done=true") {
		t.Errorf("log %q, want the last line only", l)
	}
}

// TestMeterRealTicker runs the real ticker with a short interval, readers and writers counting
// at the same time (go test -race checks them).
func TestMeterRealTicker(t *testing.T) {
	var buf logBuffer
	m := Start(t.Context(), newLogger(&buf), "backup progress", Options{Interval: 5 * time.Millisecond})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			w := m.Writer(io.Discard)
			for range 20 {
				w.Write(make([]byte, 1000))
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	m.Stop()
	lines := buf.lines()
	if len(lines) < 2 {
		t.Fatalf("want periodic lines and a last one, have %q", lines)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "bytes=78.1KiB") || !strings.HasSuffix(last, "done=true") {
		t.Errorf("last line %q, want 80000 bytes and done=true", last)
	}
	if m.N() != 80000 {
		t.Errorf("N = %d", m.N())
	}
}

func TestNilMeter(t *testing.T) {
	m := Start(t.Context(), nil, "silent", Options{})
	if m != nil {
		t.Fatal("a meter without a logger")
	}
	r := strings.NewReader("x")
	if m.Reader(r) != io.Reader(r) || m.Writer(io.Discard) != io.Discard {
		t.Error("a nil meter wraps")
	}
	m.Add(1)
	m.Stop()
	if m.N() != 0 {
		t.Error("a nil meter counts")
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1.0KiB", 1536: "1.5KiB", 100 << 10: "100KiB",
		210 << 20: "210MiB", 1288490189: "1.2GiB", 3 << 40: "3.0TiB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 18*time.Millisecond + 300*time.Microsecond: "18ms", 5120 * time.Millisecond: "5.1s",
		2*time.Minute + 3449*time.Millisecond: "2m3.4s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %s, want %s", d, got, want)
		}
	}
}
