package store

import (
	"bytes"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// progressLog is a logger whose lines a test reads; meters write from their own goroutines.
type progressLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (p *progressLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b.Write(b)
}

func (p *progressLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b.String()
}

func (p *progressLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(p, nil)) }

// wantProgress checks that the log has a last progress line matching each pattern.
func wantProgress(t *testing.T, log string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(log) {
			t.Errorf("no progress line matching %s in:\n%s", p, log)
		}
	}
}

func TestOCIProgress(t *testing.T) {
	host := ociTestRegistry(t, nil)
	b := testBundle(t, t.TempDir(), "keycloak-r7-20250304T050607Z", 3<<20, 1)
	var log progressLog
	o := OCI{Ref: host + "/backups/keycloak", TempDir: t.TempDir(), Log: log.logger()}
	loc, err := o.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(t.Context(), loc); err != nil {
		t.Fatal(err)
	}
	// Only the dump's layer is metered, once each way.
	wantProgress(t, log.String(),
		`(?m)^time=\S+ level=INFO msg="upload progress" store=oci ref=\S+:keycloak-r7-20250304T050607Z bytes=3\.0MiB of=3\.0MiB percent=100 rate=\S+/s elapsed=\S+ done=true$`,
		`(?m)^time=\S+ level=INFO msg="download progress" store=oci file=dump\.pgcustom\.zst bytes=3\.0MiB of=3\.0MiB percent=100 rate=\S+/s elapsed=\S+ done=true$`,
	)
	if n := bytes.Count([]byte(log.String()), []byte("\n")); n != 2 {
		t.Errorf("%d progress lines, want 2:\n%s", n, log.String())
	}
}

func TestArtifactProgress(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv)
	var log progressLog
	a.Log = log.logger()
	b := testBundle(t, t.TempDir(), "identity-r3-20260504T030201Z", 1<<20, 1)
	if _, err := a.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(t.Context(), b.Name()); err != nil {
		t.Fatal(err)
	}
	wantProgress(t, log.String(),
		`(?m)^time=\S+ level=INFO msg="upload progress" store=artifact bytes=1\.0MiB rate=\S+/s elapsed=\S+ done=true$`,
		`(?m)^time=\S+ level=INFO msg="download progress" store=artifact bytes=1\.0MiB (of=1\.0MiB percent=100 )?rate=\S+/s elapsed=\S+ done=true$`,
	)
}
