package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Source is a part to write into a bundle: its role, its file name in a plaintext bundle
// (an encrypted one adds .age), and its content.
type Source struct {
	Role, File string
	Open       func() (io.ReadCloser, error)
}

// Bytes is a part whose content is data.
func Bytes(role, file string, data []byte) Source {
	return Source{Role: role, File: file, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// FromFile is a part whose content is the file at path.
func FromFile(role, file, path string) Source {
	return Source{Role: role, File: file, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// WritePart writes the part src into the bundle directory dir, encrypted to recipients when
// there are any, and returns it with the sha256 and size of its file as stored. The file must
// not exist.
func WritePart(ctx context.Context, dir string, src Source, recipients []age.Recipient) (Part, error) {
	p := Part{Role: src.Role, File: src.File}
	if len(recipients) > 0 {
		p.File += ".age"
	}
	if p.File != filepath.Base(p.File) || p.File == ManifestFile || strings.HasPrefix(p.File, ".") {
		return Part{}, fmt.Errorf("part %s: %q is not a plain file name", p.Role, p.File)
	}
	in, err := src.Open()
	if err != nil {
		return Part{}, fmt.Errorf("part %s: %w", p.Role, err)
	}
	defer in.Close()
	path := filepath.Join(dir, p.File)
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Part{}, fmt.Errorf("part %s: %w", p.Role, err)
	}
	err = func() error {
		defer out.Close()
		h := sha256.New()
		cw := &countWriter{}
		sink := io.MultiWriter(out, h, cw)
		w := io.WriteCloser(nopWriteCloser{sink})
		if len(recipients) > 0 {
			if w, err = age.Encrypt(sink, recipients...); err != nil {
				return err
			}
		}
		if _, err := io.Copy(w, ContextReader(ctx, in)); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		p.SHA256, p.SizeBytes = hex.EncodeToString(h.Sum(nil)), cw.n
		if err := out.Sync(); err != nil {
			return err
		}
		return out.Close()
	}()
	if err != nil {
		os.Remove(path)
		return Part{}, fmt.Errorf("part %s: write %s: %w", p.Role, path, err)
	}
	return p, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// CheckPart compares a part's file with the sha256 and size the manifest gives it (a format 1
// bundle's release files have none: there, that the file is there).
func (b *Bundle) CheckPart(p Part) error {
	f, err := os.Open(b.PartPath(p))
	if err != nil {
		return fmt.Errorf("%s part: %w", p.Role, err)
	}
	defer f.Close()
	if p.SHA256 == "" {
		return nil
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("%s part: read %s: %w", p.Role, p.File, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != p.SizeBytes || sum != p.SHA256 {
		return fmt.Errorf("%s part %s is %d bytes with sha256 %s, the manifest says %d bytes with %s: the file is damaged or not this bundle's",
			p.Role, p.File, n, sum, p.SizeBytes, p.SHA256)
	}
	return nil
}

// ErrNoPart marks a bundle without the part asked for.
var ErrNoPart = errors.New("the bundle has no such part")

// OpenPart checks the part of the given role against the manifest and returns its content,
// decrypted with identities when the bundle is encrypted. A damaged part, or an encrypted one
// without an identity that opens it, is refused (ErrRefused).
func (b *Bundle) OpenPart(role string, identities []age.Identity) (io.ReadCloser, error) {
	p, ok := b.Manifest.Part(role)
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s part", ErrNoPart, b.Dir, role)
	}
	if err := b.CheckPart(p); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, b.Dir, err)
	}
	f, err := os.Open(b.PartPath(p))
	if err != nil {
		return nil, err
	}
	if !b.Manifest.Encrypted() {
		return f, nil
	}
	if len(identities) == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: %s: the bundle is encrypted with age; give the age identity (backup-identity)", ErrRefused, b.Dir)
	}
	r, err := age.Decrypt(f, identities...)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %s part: %w", ErrRefused, b.Dir, role, decryptError(err))
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// ParseIdentities reads an age identity file's content (the backup-identity input).
func ParseIdentities(text string) ([]age.Identity, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	ids, err := age.ParseIdentities(strings.NewReader(text))
	if err != nil {
		// The error of the parser may quote the key: say only that it does not parse.
		return nil, errors.New("the age identity does not parse (give the content of an age identity file)")
	}
	return ids, nil
}

// decryptError says why age could not decrypt, naming the likely cause.
func decryptError(err error) error {
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return errors.New("the age identity given does not decrypt this bundle (it was encrypted to other recipients)")
	}
	return fmt.Errorf("decrypt: %w", err)
}
