//go:build linux

package bundle

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDirStoreWorkspaceOwner: run as root (as a container action is), the path store gives the
// bundle to the owner of GITHUB_WORKSPACE (a directory owned by another uid stands in for it),
// so that the job's later steps, run as that user, can read and remove it; nobody else can
// read it (0700, 0600).
func TestDirStoreWorkspaceOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, as a container action runs")
	}
	const uid, gid, stranger = 4242, 4343, 4444
	// Traversable by the other users, unlike t.TempDir.
	root, err := os.MkdirTemp("", "workspace-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(root, "workspace")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ws, uid, gid); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"GITHUB_WORKSPACE": ws}
	owner := WorkspaceOwner(func(k string) string { return env[k] })
	if owner == nil || *owner != (FileOwner{UID: uid, GID: gid}) {
		t.Fatalf("WorkspaceOwner = %v, want uid %d gid %d", owner, uid, gid)
	}
	if o := WorkspaceOwner(func(string) string { return "" }); o != nil {
		t.Errorf("WorkspaceOwner without GITHUB_WORKSPACE = %v, want nil", o)
	}
	if o := WorkspaceOwner(func(string) string { return root }); o != nil {
		t.Errorf("WorkspaceOwner of a workspace root owns = %v, want nil", o)
	}

	b := testBundle(t, "identity-r1-20260504T030201Z", bytes.Repeat([]byte("plaintext rows\n"), 5000))
	store := DirStore{Dir: filepath.Join(ws, "backups", "nightly"), Owner: owner}
	if err := store.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ws, "backups")); err == nil {
		t.Error("Check left the directories it created")
	}
	loc, err := store.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}

	// Every directory Put made and every file of the bundle: the workspace owner's, private.
	want := map[string]fs.FileMode{
		filepath.Join(ws, "backups"):            0o755,
		store.Dir:                               0o755,
		loc:                                     0o700,
		filepath.Join(loc, b.Manifest.DumpFile): 0o600,
		filepath.Join(loc, ReleaseValuesFile):   0o600,
		filepath.Join(loc, ManifestFile):        0o600,
	}
	entries, err := os.ReadDir(loc)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("the stored bundle holds %d files, want 3", len(entries))
	}
	for p, mode := range want {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := fileOwnerOf(fi)
		if o != *owner || fi.Mode().Perm() != mode {
			t.Errorf("%s: uid %d gid %d mode %v, want uid %d gid %d mode %v", p, o.UID, o.GID, fi.Mode().Perm(), uid, gid, mode)
		}
	}

	// The runner's user reads the bundle and removes it; another user reads nothing of it.
	dump, err := os.ReadFile(b.DumpPath())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runAs(t, uid, gid, "cat", filepath.Join(loc, b.Manifest.DumpFile)); err != nil || !bytes.Equal(out, dump) {
		t.Errorf("uid %d reading the dump: %v (%d bytes, want %d)", uid, err, len(out), len(dump))
	}
	if out, err := runAs(t, stranger, stranger, "cat", filepath.Join(loc, ManifestFile)); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("uid %d reading the manifest: %v %s, want permission denied", stranger, err, out)
	}
	if out, err := runAs(t, uid, gid, "rm", "-r", filepath.Join(ws, "backups")); err != nil {
		t.Errorf("uid %d removing the backups: %v %s", uid, err, out)
	}
}

// TestDirStoreNoOwner: without an owner, Put leaves the files to this process's user, 0700
// and 0600 as before.
func TestDirStoreNoOwner(t *testing.T) {
	b := testBundle(t, "identity-r1-20260504T030201Z", bytes.Repeat([]byte("plaintext rows\n"), 5000))
	store := DirStore{Dir: filepath.Join(t.TempDir(), "s")}
	loc, err := store.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{loc, filepath.Join(loc, ManifestFile), filepath.Join(loc, b.Manifest.DumpFile)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := fileOwnerOf(fi)
		if o.UID != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: uid %d mode %v, want uid %d and no access for others", p, o.UID, fi.Mode().Perm(), os.Geteuid())
		}
	}
}

// runAs runs a command as another user and returns its combined output.
func runAs(t *testing.T, uid, gid uint32, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}
