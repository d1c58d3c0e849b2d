package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestBackupAndRestoreLogProgress: the backup and restore subcommands give their logger to the
// engine and the stores, so each stream's last progress line is on stderr.
func TestBackupAndRestoreLogProgress(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/backups/keycloak"
	src := testworld.Postgres(t)
	src.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY, name text); INSERT INTO realm VALUES ('1', 'master');`)
	r := runCLI(t, map[string]string{"DATABASE_URL": src.URL()}, "backup", "--backup-store="+ref, "--allow-plaintext-backup=true", "--backup-name=kc-1")
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: code %d, stderr:\n%s", r.code, r.stderr)
	}
	wantLines(t, r.stderr,
		`msg="backup progress" database=\S+ bytes=\S+ rate=\S+ elapsed=\S+ done=true`,
		`msg="upload progress" store=oci ref=\S+:kc-1 bytes=\S+ of=\S+ percent=100 rate=\S+ elapsed=\S+ done=true`)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	dst := testworld.Postgres(t)
	r = runCLI(t, map[string]string{"DATABASE_URL": dst.URL()}, "restore", "--from="+lines[len(lines)-1])
	if r.code != rollout.ExitOK {
		t.Fatalf("restore: code %d, stderr:\n%s", r.code, r.stderr)
	}
	wantLines(t, r.stderr,
		`msg="download progress" store=oci file=dump\.pgcustom\.zst bytes=\S+ of=\S+ percent=100 rate=\S+ elapsed=\S+ done=true`,
		`msg="restore progress" database=\S+ bytes=\S+ rate=\S+ elapsed=\S+ dump_read=100% done=true`)
}

func wantLines(t *testing.T, log string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)^time=\S+ level=INFO ` + p + `$`).MatchString(log) {
			t.Errorf("no line matching %s in:\n%s", p, log)
		}
	}
}
