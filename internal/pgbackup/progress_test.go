package pgbackup_test

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// syncBuffer is a log destination the meters' goroutines write into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the log's lines with msg.
func (s *syncBuffer) lines(msg string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for l := range strings.Lines(s.b.String()) {
		if strings.Contains(l, ` msg="`+msg+`" `) {
			out = append(out, strings.TrimSuffix(l, "\n"))
		}
	}
	return out
}

// checkProgress checks a meter's lines: at least one while the stream ran, then one last
// line with done=true, every line matching pattern.
func checkProgress(t *testing.T, lines []string, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	if len(lines) < 2 {
		t.Fatalf("want progress lines while the stream ran and a last one, have %q", lines)
	}
	for i, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("line %q does not match %s", l, pattern)
		}
		if last := i == len(lines)-1; strings.HasSuffix(l, " done=true") != last {
			t.Errorf("line %d of %d: %q; want done=true on the last line only", i+1, len(lines), l)
		}
	}
}

// TestBackupRestoreProgress backs up and restores a real database with a short progress
// interval: the dump and the restore each log their bytes and rate while they stream (pg_dump's
// output, the SQL into psql), and a last line; the restore's lines also say how much of the
// dump file was read.
func TestBackupRestoreProgress(t *testing.T) {
	for _, format := range []string{bundle.FormatCustom, bundle.FormatPlain} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf syncBuffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			_, b, _ := backupKeycloak11(t, pgbackup.BackupOptions{Format: format, Log: log, ProgressInterval: 20 * time.Millisecond})
			checkProgress(t, buf.lines("backup progress"),
				`^time=\S+ level=INFO msg="backup progress" database=t\d+_\S+ bytes=[\d.]+[KM]?i?B rate=[\d.]+[KMG]?i?B/s elapsed=[\d.]+m?s( done=true)?$`)

			dst := testworld.Postgres(t)
			_, err := pgbackup.RestoreBundle(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: dst.URL(), Log: log, ProgressInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			lines := buf.lines("restore progress")
			checkProgress(t, lines,
				`^time=\S+ level=INFO msg="restore progress" database=t\d+_\S+ bytes=\S+ rate=\S+/s elapsed=\S+ dump_read=\d+%( done=true)?$`)
			if last := lines[len(lines)-1]; !strings.Contains(last, " dump_read=100% ") {
				t.Errorf("the restore's last line %q does not say the whole file was read", last)
			}
			checkFixtureState(t, dst, keycloak11Rows, keycloak11Schema)
			t.Logf("backup:\n%s\nrestore:\n%s", strings.Join(buf.lines("backup progress"), "\n"), strings.Join(lines, "\n"))
		})
	}
}

// TestEngineProgress is the engine with a logger: the dump's and the encrypted copy's last
// lines (the default interval is longer than this backup); nothing without a logger.
func TestEngineProgress(t *testing.T) {
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	var buf syncBuffer
	e := &pgbackup.Engine{
		ConnString: db.URL(), WorkDir: t.TempDir(), Recipients: []string{identity.Recipient().String()},
		Stores: []bundle.Store{bundle.DirStore{Dir: t.TempDir()}}, Log: slog.New(slog.NewTextHandler(&buf, nil)),
	}
	if _, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "progress"}); err != nil {
		t.Fatal(err)
	}
	if l := buf.lines("backup progress"); len(l) != 1 || !strings.HasSuffix(l[0], " done=true") {
		t.Errorf("backup progress: %q", l)
	}
	if l := buf.lines("encrypt progress"); len(l) != 1 || !regexp.MustCompile(` bundle=progress bytes=\S+ of=\S+ percent=100 .* done=true$`).MatchString(l[0]) {
		t.Errorf("encrypt progress: %q", l)
	}
}
