package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// Store keeps bundles somewhere. Put copies a complete local bundle into the store and returns
// where it is; Open brings a stored bundle back as a local one (its manifest checked, its dump
// not yet). Check tells, before anything changes, whether Put could store a bundle now,
// without storing one; its error names the store as the backup-store input gives it and
// says what to fix.
type Store interface {
	Put(ctx context.Context, b *Bundle) (location string, err error)
	Open(ctx context.Context, location string) (*Bundle, error)
	Check(ctx context.Context) error
}

// Placement is where a store put a bundle: its location as Put returns it and, for a GitHub
// artifact, the artifact's id and the URL of its page (0 and "" otherwise).
type Placement struct {
	Location    string
	ArtifactID  int64
	ArtifactURL string
}

// Placer is a Store that tells more than the location of a bundle it puts.
type Placer interface {
	Place(ctx context.Context, b *Bundle) (Placement, error)
}

// Place puts b in s and tells where: with Place when s is a Placer, with Put otherwise.
func Place(ctx context.Context, s Store, b *Bundle) (Placement, error) {
	if p, ok := s.(Placer); ok {
		return p.Place(ctx, b)
	}
	loc, err := s.Put(ctx, b)
	return Placement{Location: loc}, err
}

// CheckStores checks every store and returns the problems of all those that cannot take a
// bundle now, or nil.
func CheckStores(ctx context.Context, stores []Store) error {
	var errs []error
	for _, s := range stores {
		if err := s.Check(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DirStore is the path:DIR store: bundles are directories DIR/<backup-name>/ holding the dump
// file and manifest.json, readable by their owner only (0700, files 0600).
type DirStore struct {
	Dir string
	// Owner, when not nil, is given the stored bundles and the directories Put creates on the
	// way to DIR, instead of this process's user: see WorkspaceOwner.
	Owner *FileOwner
	// Log receives the progress of a dump that Put copies (rather than links) at Info; nil
	// logs nothing.
	Log *slog.Logger
}

// FileOwner is a user and group, by number.
type FileOwner struct {
	UID, GID int
}

// WorkspaceOwner is the owner of GITHUB_WORKSPACE when this process runs as root and the
// workspace belongs to another user, nil otherwise. A container action runs as root, while the
// later steps of its job run as the runner's user, who owns the workspace: the bundles of a
// path store become that user's, so that those steps can read, upload and remove them.
func WorkspaceOwner(getenv func(string) string) *FileOwner {
	ws := getenv("GITHUB_WORKSPACE")
	if ws == "" || os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(ws)
	if err != nil {
		return nil
	}
	o, ok := fileOwnerOf(fi)
	if !ok || (o.UID == 0 && o.GID == 0) {
		return nil
	}
	return &o
}

// own gives the paths to s.Owner, with the modes a bundle keeps (0700 for directories, 0600
// for files), so that nobody else can read them; nothing without an owner.
func (s DirStore) own(paths ...string) error {
	if s.Owner == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, s.Owner.UID, s.Owner.GID); err != nil {
			return fmt.Errorf("give %s to the workspace's owner (uid %d, gid %d): %w", p, s.Owner.UID, s.Owner.GID, err)
		}
	}
	return nil
}

// Location returns the directory a bundle called name has in the store.
func (s DirStore) Location(name string) string { return filepath.Join(s.Dir, name) }

// Put copies the bundle to DIR/<name>/, the dump first and the manifest last. A bundle that
// already is at that place is left as it is. The dump file, written once and never changed
// after, is hard-linked when DIR is on the same file system as the bundle: storing a
// gigabyte then costs no copy and no second write to disk.
//
// With an Owner, the bundle's directory and files are given to it before the manifest is
// written (the manifest last), and so are the directories created on the way to DIR.
func (s DirStore) Put(ctx context.Context, b *Bundle) (string, error) {
	dst := s.Location(b.Name())
	if same, _ := sameDir(dst, b.Dir); same {
		return dst, nil
	}
	created := missingDirs(s.Dir)
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", fmt.Errorf("store bundle in %s: %w", s.Dir, err)
	}
	if err := s.own(created...); err != nil {
		return "", fmt.Errorf("store bundle in %s: %w", s.Dir, err)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return "", fmt.Errorf("store bundle: %w", err)
	}
	if err := s.putFiles(ctx, b, dst); err != nil {
		os.RemoveAll(dst)
		return "", fmt.Errorf("store bundle in %s: %w", dst, err)
	}
	return dst, nil
}

func (s DirStore) putFiles(ctx context.Context, b *Bundle, dst string) error {
	files := []string{filepath.Join(dst, b.Manifest.DumpFile)}
	if err := linkOrCopy(ctx, files[0], b.DumpPath(), s.Log); err != nil {
		return err
	}
	for _, p := range b.Manifest.Parts {
		files = append(files, filepath.Join(dst, p.File))
		if err := copyFile(ctx, files[len(files)-1], b.PartPath(p)); err != nil {
			return err
		}
	}
	if s.Owner != nil {
		// A linked dump keeps the mode it was written with: make sure of 0600.
		for _, f := range files {
			if err := os.Chmod(f, 0o600); err != nil {
				return err
			}
		}
	}
	if err := s.own(append(files, dst)...); err != nil {
		return err
	}
	if err := WriteManifest(dst, b.Manifest); err != nil {
		return err
	}
	return s.own(filepath.Join(dst, ManifestFile))
}

// missingDirs are the directories missing on the way to dir, deepest first.
func missingDirs(dir string) []string {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	return missing
}

// Check tells whether bundles can be stored in DIR: the directory exists or can be created,
// and a file can be created in it (and given to the Owner, if any) and removed. The probe file
// has a name of its own and is removed at once; directories the check had to create are
// removed again.
func (s DirStore) Check(context.Context) error {
	if err := s.probe(); err != nil {
		return fmt.Errorf("backup-store %q: cannot write in %s: %w; give a writable directory", "path:"+s.Dir, s.Dir, err)
	}
	return nil
}

func (s DirStore) probe() error {
	created := missingDirs(s.Dir)
	defer func() {
		for _, d := range created {
			os.Remove(d)
		}
	}()
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.Dir, ".identity-upgrade-check-*")
	if err != nil {
		return err
	}
	err = f.Close()
	if err == nil {
		err = s.own(f.Name())
	}
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}

// Open opens the bundle directory at location.
func (s DirStore) Open(_ context.Context, location string) (*Bundle, error) {
	return Open(location)
}

func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// linkFile is os.Link; tests replace it to take the copy path.
var linkFile = os.Link

// linkOrCopy makes dst a hard link to src, or a copy of it where a link cannot be made
// (another file system, a file system without links); log receives the copy's progress.
func linkOrCopy(ctx context.Context, dst, src string, log *slog.Logger) error {
	if err := linkFile(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var size int64
	if fi, err := in.Stat(); err == nil {
		size = fi.Size()
	}
	meter := progress.Start(ctx, log, "copy progress", progress.Options{Total: size, Attrs: []any{"store", "path", "file", dst}})
	defer meter.Stop()
	return WriteFile(ctx, dst, meter.Reader(in))
}

func copyFile(ctx context.Context, dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFile(ctx, dst, in)
}

// WriteFile writes what r gives into a new file dst (mode 0600, which must not exist), synced
// to disk; the copy stops when ctx ends. Stores use it to unpack bundles.
func WriteFile(ctx context.Context, dst string, r io.Reader) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, ContextReader(ctx, r)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ContextReader reads r until ctx ends: a long copy stops when the run is cancelled.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
