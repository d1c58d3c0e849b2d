// Package progress reports how far a long stream has come: a Meter counts the bytes that pass
// through a reader or writer and logs, every few seconds, the bytes done and the rate, and
// once more when the stream ends.
package progress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often a Meter logs when Options.Interval is 0.
const DefaultInterval = 5 * time.Second

// Options say how a Meter logs.
type Options struct {
	// Interval is the time between two lines; 0 means DefaultInterval.
	Interval time.Duration
	// Total is the size the stream is expected to have, when it is known: the lines then say
	// of how much (of=) and the percentage done.
	Total int64
	// Attrs are logged on every line before the counts (key-value pairs, as slog takes them).
	Attrs []any
	// Status, when set, is called for every line; its attrs follow the counts. It runs on
	// the Meter's goroutine: what it reads must be safe for that.
	Status func() []any
}

// Meter counts bytes and logs them at Info: every interval the bytes done and the rate since
// the previous line, and when it is stopped a last line with the average rate and done=true.
// It is safe for concurrent use. A nil *Meter counts nothing and logs nothing.
type Meter struct {
	ctx   context.Context
	log   *slog.Logger
	msg   string
	opts  Options
	now   func() time.Time
	start time.Time

	n    atomic.Int64
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start starts a Meter that logs msg to log every interval until Stop is called or ctx ends
// (Stop still logs the last line after ctx ended). With a nil log it returns nil: nothing is
// counted or logged and no goroutine is started.
func Start(ctx context.Context, log *slog.Logger, msg string, opts Options) *Meter {
	if log == nil {
		return nil
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	return start(ctx, log, msg, opts, time.Now, t.C, t.Stop)
}

// start starts a Meter that logs on every tick and reads the time from now.
func start(ctx context.Context, log *slog.Logger, msg string, opts Options, now func() time.Time, ticks <-chan time.Time, stopTicks func()) *Meter {
	m := &Meter{
		ctx: ctx, log: log, msg: msg, opts: opts, now: now, start: now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go m.loop(ticks, stopTicks)
	return m
}

func (m *Meter) loop(ticks <-chan time.Time, stopTicks func()) {
	defer close(m.done)
	defer stopTicks()
	last, lastN := m.start, int64(0)
	for {
		select {
		case <-m.stop:
			return
		case <-m.ctx.Done():
			return
		case <-ticks:
			now, n := m.now(), m.n.Load()
			m.line(n, now.Sub(m.start), rate(n-lastN, now.Sub(last)), false)
			last, lastN = now, n
		}
	}
}

// Add counts n bytes.
func (m *Meter) Add(n int64) {
	if m != nil {
		m.n.Add(n)
	}
}

// N is the number of bytes counted.
func (m *Meter) N() int64 {
	if m == nil {
		return 0
	}
	return m.n.Load()
}

// Stop stops the Meter and logs its last line: the bytes done, the average rate, done=true.
// Only the first call does anything; the Meter's goroutine has ended when it returns.
func (m *Meter) Stop() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		close(m.stop)
		<-m.done
		n, elapsed := m.n.Load(), m.now().Sub(m.start)
		m.line(n, elapsed, rate(n, elapsed), true)
	})
}

func (m *Meter) line(n int64, elapsed time.Duration, perSecond float64, done bool) {
	attrs := append([]any{}, m.opts.Attrs...)
	attrs = append(attrs, "bytes", Bytes(n))
	if m.opts.Total > 0 {
		attrs = append(attrs, "of", Bytes(m.opts.Total), "percent", min(100, n*100/m.opts.Total))
	}
	attrs = append(attrs, "rate", Bytes(int64(perSecond))+"/s", "elapsed", Duration(elapsed))
	if m.opts.Status != nil {
		attrs = append(attrs, m.opts.Status()...)
	}
	if done {
		attrs = append(attrs, "done", true)
	}
	m.log.InfoContext(context.WithoutCancel(m.ctx), m.msg, attrs...)
}

// rate is n bytes in d, per second; 0 when no time passed.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Reader counts what is read from r. When r reports io.EOF the Meter stops (Stop).
func (m *Meter) Reader(r io.Reader) io.Reader {
	if m == nil {
		return r
	}
	return &reader{m: m, r: r}
}

// ReadCloser counts what is read from rc, like Reader, and stops the Meter when rc is closed.
func (m *Meter) ReadCloser(rc io.ReadCloser) io.ReadCloser {
	if m == nil {
		return rc
	}
	return &readCloser{reader: reader{m: m, r: rc}, c: rc}
}

// Writer counts what is written to w.
func (m *Meter) Writer(w io.Writer) io.Writer {
	if m == nil {
		return w
	}
	return &writer{m: m, w: w}
}

type reader struct {
	m *Meter
	r io.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.Add(int64(n))
	if err == io.EOF {
		r.m.Stop()
	}
	return n, err
}

type readCloser struct {
	reader
	c io.Closer
}

func (r *readCloser) Close() error {
	err := r.c.Close()
	r.m.Stop()
	return err
}

type writer struct {
	m *Meter
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.m.Add(int64(n))
	return n, err
}

// Duration formats a duration to a tenth of a second, or to the millisecond below a second:
// 18ms, 5.1s, 2m3.4s.
func Duration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// Bytes formats a number of bytes with binary units: 512B, 45.3MiB, 1.2GiB, 210MiB.
func Bytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	if v < 100 {
		return fmt.Sprintf("%.1f%ciB", v, units[i])
	}
	return fmt.Sprintf("%.0f%ciB", v, units[i])
}
