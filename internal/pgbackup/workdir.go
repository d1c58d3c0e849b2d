package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// workDirRoot is the directory, under the runner's temporary directory, that holds one
// directory per release, and in it one per run: the run's working copy of its backup (the
// plaintext dump, and the release's values and rendered manifest, which carries its Secrets).
const workDirRoot = "identity-upgrade-work"

var unsafeKey = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// NewWorkDir makes the private working directory of a run for the release key (its namespace
// and name) under base (the runner's temporary directory; os.TempDir when empty):
// base/identity-upgrade-work/<key>/run-*, mode 0700. A run that dies leaves it behind; the
// next run of the same release finds it there, uses it to recover the dead run when it must,
// and removes it (RemoveStale).
func NewWorkDir(base, key string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	parent := filepath.Join(base, workDirRoot, unsafeKey.ReplaceAllString(key, "_"))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return dir, nil
}

// RemoveStale removes the working directories that earlier runs of the same release left
// beside this run's (e.WorkDir), and says which. The caller holds the release's lock, so no
// live run owns them.
func (e *Engine) RemoveStale(context.Context) ([]string, error) {
	if e.WorkDir == "" {
		return nil, nil
	}
	siblings, err := filepath.Glob(filepath.Join(filepath.Dir(e.WorkDir), "run-*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, dir := range siblings {
		if filepath.Clean(dir) == filepath.Clean(e.WorkDir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// Reopen finds the backup an interrupted run made: its working copy when that run ran on this
// machine (a stale working directory of the release), else a stored copy, from any of its
// locations through any configured store; a stored copy must have the sha256 the journal
// recorded.
func (e *Engine) Reopen(ctx context.Context, jb rollout.JournalBackup) (rollout.Backup, error) {
	out := rollout.Backup{Name: jb.Name, Locations: jb.Locations, SHA256: jb.SHA256, Bytes: jb.Bytes, Schema: jb.Schema}
	if e.WorkDir != "" {
		copies, _ := filepath.Glob(filepath.Join(filepath.Dir(e.WorkDir), "run-*", jb.Name))
		for _, dir := range copies {
			if b, err := bundle.Open(dir); err == nil {
				out.Dir = b.Dir
				return out, nil
			}
		}
	}
	var errs []error
	for _, loc := range jb.Locations {
		if st, err := os.Stat(loc); err == nil && st.IsDir() {
			b, err := bundle.Open(loc)
			if err == nil && b.Manifest.SHA256 == jb.SHA256 {
				out.Dir = b.Dir
				return out, nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", loc, cmpErr(err, b, jb)))
			continue
		}
		for _, s := range e.Stores {
			b, err := s.Open(ctx, loc)
			if err == nil && b.Manifest.SHA256 != jb.SHA256 {
				err = cmpErr(nil, b, jb)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", loc, err))
				continue
			}
			out.Dir = b.Dir
			return out, nil
		}
	}
	if len(errs) == 0 {
		return out, fmt.Errorf("no working copy of %s here, and no location recorded (%s)", jb.Name, strings.Join(jb.Locations, ", "))
	}
	return out, errors.Join(errs...)
}

// cmpErr is err, or a sha256 mismatch between a found bundle and the journal.
func cmpErr(err error, b *bundle.Bundle, jb rollout.JournalBackup) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("bundle %s has sha256 %s, the journal recorded %s", b.Dir, b.Manifest.SHA256, jb.SHA256)
}
