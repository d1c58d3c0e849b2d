package bundle

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// CustomizationsFile is the customizations part's file in a plaintext bundle: a tar, every
// path under customizations/, compressed with zstd.
const CustomizationsFile = "customizations.tar.zst"

// CustomizationsIndexFile is the index of a collected customizations directory, at its root;
// packed, it goes into the manifest, not into the tar.
const CustomizationsIndexFile = "index.json"

// customizationsRoot prefixes every path of the customizations tar.
const customizationsRoot = "customizations/"

// Kinds of customization.
const (
	ItemConfigMap   = "configmap"    // a ConfigMap the Keycloak pods reference (YAML)
	ItemSecret      = "secret"       // a Secret the Keycloak pods reference (YAML)
	ItemRealmExport = "realm-export" // a realm's partial export through the admin API (JSON)
	ItemTheme       = "theme"        // a theme directory that is not Keycloak's or the image's own
	ItemHome        = "home"         // a directory of a ZIP installation's Keycloak home
)

// Sources of customizations.
const (
	SourceCluster = "cluster"       // the release's Keycloak pods and admin API
	SourceHome    = "keycloak-home" // a ZIP installation's Keycloak home (backup --keycloak-home)
)

// Customizations is the index of a bundle's customizations part, kept in its manifest: what
// was saved, by name and path, never its content.
type Customizations struct {
	Source string              `json:"source"`
	Items  []CustomizationItem `json:"items"`
	// ThemeUses are the themes the realms name, and where each came from.
	ThemeUses []ThemeUse `json:"theme_uses,omitempty"`
	// Notes say what was not saved and why, and what a reader must know (exports' secrets
	// are masked).
	Notes []string `json:"notes,omitempty"`
	// Files and Bytes count the files saved and their size before compression.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// CustomizationItem is one thing saved: its kind, its name, its path in the part (and below
// the directory restore writes them to), where it came from, and what to know about it.
type CustomizationItem struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Path   string `json:"path"`
	Origin string `json:"origin,omitempty"`
	Note   string `json:"note,omitempty"`
}

// ThemeUse is a theme a realm names: realm, kind (login, account, admin, email), theme, and
// where it came from (an init container, the image, a copy by hand, Keycloak itself).
type ThemeUse struct {
	Realm  string `json:"realm"`
	Kind   string `json:"kind"`
	Theme  string `json:"theme"`
	Origin string `json:"origin,omitempty"`
}

// Count returns how many items of a kind there are, and their names.
func (c *Customizations) Count(kind string) (int, []string) {
	var names []string
	for _, it := range c.Items {
		if it.Kind == kind {
			names = append(names, it.Name)
		}
	}
	return len(names), names
}

// WriteCustomizationsIndex writes the index at the root of a collected directory.
func WriteCustomizationsIndex(dir string, c Customizations) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, CustomizationsIndexFile), append(data, '\n'), 0o600)
}

// ReadCustomizationsIndex reads the index at the root of a collected directory.
func ReadCustomizationsIndex(dir string) (Customizations, error) {
	var c Customizations
	data, err := os.ReadFile(filepath.Join(dir, CustomizationsIndexFile))
	if err != nil {
		return c, fmt.Errorf("customizations index: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("customizations index %s: %w", filepath.Join(dir, CustomizationsIndexFile), err)
	}
	return c, nil
}

// PackCustomizations writes the collected directory dir into the new file dst as the part's
// content, a zstd-compressed tar of its regular files and directories under customizations/
// (the index left out), and returns its index with the files counted. Symbolic links and
// other special files are left out, and said in the index's notes.
func PackCustomizations(ctx context.Context, dir, dst string) (Customizations, error) {
	c, err := ReadCustomizationsIndex(dir)
	if err != nil {
		return c, err
	}
	c.Files, c.Bytes = 0, 0
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return c, err
	}
	err = func() error {
		defer out.Close()
		zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil || rel == "." || rel == CustomizationsIndexFile {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			name := customizationsRoot + filepath.ToSlash(rel)
			switch {
			case d.IsDir():
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
			case !info.Mode().IsRegular():
				c.Notes = append(c.Notes, fmt.Sprintf("%s left out: not a regular file (%s)", filepath.ToSlash(rel), info.Mode().Type()))
				return nil
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.Copy(tw, io.LimitReader(f, info.Size()))
			if err == nil && n != info.Size() {
				err = fmt.Errorf("%s changed while it was packed", p)
			}
			c.Files++
			c.Bytes += n
			return err
		})
		if walkErr != nil {
			return walkErr
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if err := out.Sync(); err != nil {
			return err
		}
		return out.Close()
	}()
	if err != nil {
		os.Remove(dst)
		return c, fmt.Errorf("pack the customizations of %s: %w", dir, err)
	}
	return c, nil
}

// ErrNotEmpty marks a directory to write customizations into that already holds something.
var ErrNotEmpty = errors.New("not an empty directory")

// UnpackCustomizations writes the part's content read from r (a zstd-compressed tar) into
// dir, which must be empty or not exist: every file at its path below customizations/, with
// its mode and time. It returns how many files it wrote. A path that would leave dir, and an
// entry that is neither a file nor a directory, fail it.
func UnpackCustomizations(ctx context.Context, r io.Reader, dir string) (int, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return 0, fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	files := 0
	var dirs []*tar.Header
	for {
		if err := ctx.Err(); err != nil {
			return files, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files, fmt.Errorf("read the customizations: %w", err)
		}
		rel, ok := strings.CutPrefix(h.Name, customizationsRoot)
		clean := path.Clean("/" + rel)[1:]
		if !ok || rel == "" || clean == "" || path.IsAbs(rel) || slices.Contains(strings.Split(strings.TrimSuffix(rel, "/"), "/"), "..") {
			return files, fmt.Errorf("the customizations hold %q, which is not a path below %s", h.Name, customizationsRoot)
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return files, err
			}
			dirs = append(dirs, h)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return files, err
			}
			if err := WriteFile(ctx, dst, tr); err != nil {
				return files, fmt.Errorf("write %s: %w", dst, err)
			}
			if err := os.Chmod(dst, fs.FileMode(h.Mode).Perm()|0o600); err != nil {
				return files, err
			}
			if err := os.Chtimes(dst, h.ModTime, h.ModTime); err != nil {
				return files, err
			}
			files++
		default:
			return files, fmt.Errorf("the customizations hold %q of type %q, neither a file nor a directory", h.Name, h.Typeflag)
		}
	}
	// Directories last, deepest first: writing their files changed their times.
	for i := len(dirs) - 1; i >= 0; i-- {
		h := dirs[i]
		dst := filepath.Join(dir, filepath.FromSlash(path.Clean("/" + strings.TrimPrefix(h.Name, customizationsRoot))[1:]))
		os.Chmod(dst, fs.FileMode(h.Mode).Perm()|0o700)
		os.Chtimes(dst, h.ModTime, h.ModTime)
	}
	return files, nil
}
