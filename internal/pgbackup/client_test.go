package pgbackup

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestChooseClient picks the client of the server's major, else the oldest newer one, and
// refuses with only older ones, naming what is installed and what to install.
func TestChooseClient(t *testing.T) {
	c := func(major int) Client {
		return Client{Dir: "/usr/lib/postgresql/" + itoa(major) + "/bin", Version: itoa(major) + ".1", Major: major}
	}
	installed := []Client{c(13), c(15), c(17)}
	for _, tc := range []struct {
		server, atLeast int
		want            int // 0: refused
	}{
		{server: 11, want: 13},
		{server: 13, want: 13},
		{server: 14, want: 15},
		{server: 15, want: 15},
		{server: 16, want: 17},
		{server: 17, want: 17},
		{server: 18, want: 0},
		{server: 11, atLeast: 15, want: 15}, // an archive of pg_dump 15 needs pg_restore 15
		{server: 15, atLeast: 18, want: 0},
	} {
		got, err := ChooseClient(installed, tc.server, tc.atLeast)
		switch {
		case tc.want == 0 && !errors.Is(err, ErrNoClient):
			t.Errorf("server %d, archive %d: got %v, %v; want ErrNoClient", tc.server, tc.atLeast, got, err)
		case tc.want == 0:
			if msg := err.Error(); !strings.Contains(msg, "17.1 (/usr/lib/postgresql/17/bin)") || !strings.Contains(msg, "pg-bin-dir") {
				t.Errorf("refusal %q does not name the installed clients and pg-bin-dir", msg)
			}
		case err != nil || got.Major != tc.want:
			t.Errorf("server %d, archive %d: got %v, %v; want major %d", tc.server, tc.atLeast, got, err, tc.want)
		}
	}
	if _, err := ChooseClient(nil, 11, 0); !errors.Is(err, ErrNoClient) || !strings.Contains(err.Error(), "installed: none") {
		t.Errorf("no clients: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestClientIn reads the real installed client (the one the test world uses) and refuses a
// directory that lacks one of the three programs, naming it.
func TestClientIn(t *testing.T) {
	dir := "/usr/lib/postgresql/15/bin"
	got, err := ClientIn(t.Context(), dir)
	if err != nil || got.Major != 15 || !strings.HasPrefix(got.Version, "15.") {
		t.Fatalf("ClientIn(%s) = %+v, %v", dir, got, err)
	}
	if tools := got.Tools(); tools.PgDump != filepath.Join(dir, "pg_dump") || tools.Psql != filepath.Join(dir, "psql") {
		t.Errorf("tools %+v", tools)
	}
	partial := t.TempDir()
	for _, p := range []string{"pg_dump", "psql"} {
		if err := os.Symlink(filepath.Join(dir, p), filepath.Join(partial, p)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ClientIn(t.Context(), partial); err == nil || !strings.Contains(err.Error(), "no executable pg_restore") {
		t.Errorf("a directory without pg_restore: %v", err)
	}
	found := InstalledClients(t.Context(), []string{"/usr/lib/postgresql/*/bin", partial})
	if len(found) == 0 || found[0].Dir != dir {
		t.Errorf("InstalledClients = %+v, want %s first", found, dir)
	}
	if _, err := (ClientChooser{Dir: partial}).Choose(t.Context(), 15, 0); !errors.Is(err, ErrNoClient) || !strings.Contains(err.Error(), "pg-bin-dir") {
		t.Errorf("explicit pg-bin-dir without pg_restore: %v", err)
	}
	if _, err := (ClientChooser{Dir: dir}).Choose(t.Context(), 16, 0); !errors.Is(err, ErrNoClient) {
		t.Errorf("explicit pg-bin-dir of major 15 for a 16 server: %v", err)
	}
}
