package pgbackup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// ErrNoClient marks a database for which no suitable PostgreSQL client tools are installed:
// pg_dump must be at least the server's major version, and pg_restore at least the version
// of the pg_dump that wrote an archive.
var ErrNoClient = errors.New("no suitable PostgreSQL client tools")

// ClientPrograms are the programs a client directory must hold.
var ClientPrograms = []string{"pg_dump", "pg_restore", "psql"}

// DefaultClientDirs are the glob patterns searched for installed client tools: Debian's and
// the PostgreSQL project's Debian packages (one directory per major, as the action's image
// installs them) and the PostgreSQL project's RPMs.
var DefaultClientDirs = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"}

// Client is one installation of the PostgreSQL client programs, all of one version.
type Client struct {
	// Dir holds pg_dump, pg_restore and psql.
	Dir string
	// Version is pg_dump's version ("17.12"); Major its major number.
	Version string
	Major   int
}

// Tools returns the client's programs.
func (c Client) Tools() Tools {
	return Tools{
		PgDump:    filepath.Join(c.Dir, "pg_dump"),
		PgRestore: filepath.Join(c.Dir, "pg_restore"),
		Psql:      filepath.Join(c.Dir, "psql"),
	}
}

// String names the client for reports: "17.12 (/usr/lib/postgresql/17/bin)".
func (c Client) String() string { return fmt.Sprintf("%s (%s)", c.Version, c.Dir) }

// ClientIn reads the client tools in dir: every program of ClientPrograms must be there and
// executable, and pg_dump must say its version.
func ClientIn(ctx context.Context, dir string) (Client, error) {
	var missing []string
	for _, p := range ClientPrograms {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return Client{}, fmt.Errorf("%s holds no executable %s (it must hold %s)", dir, strings.Join(missing, ", "), strings.Join(ClientPrograms, ", "))
	}
	version, major, err := ClientVersion(ctx, filepath.Join(dir, "pg_dump"))
	if err != nil {
		return Client{}, err
	}
	return Client{Dir: dir, Version: version, Major: major}, nil
}

// InstalledClients finds the client tools in the directories that patterns (globs) match,
// oldest major first; a directory without all of ClientPrograms is passed over, and so is a
// second directory of a major already found.
func InstalledClients(ctx context.Context, patterns []string) []Client {
	var out []Client
	for _, pattern := range patterns {
		dirs, _ := filepath.Glob(pattern)
		for _, dir := range dirs {
			c, err := ClientIn(ctx, dir)
			if err != nil || slices.ContainsFunc(out, func(o Client) bool { return o.Major == c.Major }) {
				continue
			}
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Client) int { return cmp.Compare(a.Major, b.Major) })
	return out
}

// ChooseClient picks the client tools for a server of major serverMajor (and, for a restore,
// an archive written by pg_dump of major atLeast): the client of that major when installed,
// else the oldest newer one. A client's pg_dump dumps servers of its own major and older, and
// the SQL it writes targets its own major: the closest client writes the least the server
// does not know. With only older clients it returns ErrNoClient, naming what is installed.
func ChooseClient(clients []Client, serverMajor, atLeast int) (Client, error) {
	need := max(serverMajor, atLeast)
	for _, c := range clients { // oldest first
		if c.Major >= need {
			return c, nil
		}
	}
	found := "none"
	if len(clients) > 0 {
		var names []string
		for _, c := range clients {
			names = append(names, c.String())
		}
		found = strings.Join(names, ", ")
	}
	what := fmt.Sprintf("PostgreSQL %d server", serverMajor)
	if atLeast > serverMajor {
		what = fmt.Sprintf("PostgreSQL %d server and an archive of pg_dump %d", serverMajor, atLeast)
	}
	return Client{}, fmt.Errorf("%w for a %s: client tools of major %d or newer are needed, installed: %s; install postgresql-client-%d or give pg-bin-dir",
		ErrNoClient, what, need, found, need)
}

// ClientChooser finds the client tools for a database: the ones in Dir when it is set (the
// pg-bin-dir input), else the best installed ones (ChooseClient over SearchDirs, default
// DefaultClientDirs).
type ClientChooser struct {
	Dir        string
	SearchDirs []string
}

// Choose returns the client for a server of serverMajor and an archive of pg_dump atLeast (0
// when there is none). An explicit Dir that is too old is refused like a search that found
// nothing.
func (c ClientChooser) Choose(ctx context.Context, serverMajor, atLeast int) (Client, error) {
	if c.Dir != "" {
		client, err := ClientIn(ctx, c.Dir)
		if err != nil {
			return Client{}, fmt.Errorf("%w: pg-bin-dir: %w", ErrNoClient, err)
		}
		if _, err := ChooseClient([]Client{client}, serverMajor, atLeast); err != nil {
			return Client{}, err
		}
		return client, nil
	}
	dirs := c.SearchDirs
	if dirs == nil {
		dirs = DefaultClientDirs
		// A pg_dump on PATH (Homebrew, a tarball) counts too, after the known places.
		if p, err := exec.LookPath("pg_dump"); err == nil {
			dirs = append(slices.Clone(dirs), filepath.Dir(p))
		}
	}
	return ChooseClient(InstalledClients(ctx, dirs), serverMajor, atLeast)
}
