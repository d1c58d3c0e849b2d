package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// EncryptedCopy writes an age-encrypted copy of the plaintext bundle b into dst: every file
// of it, the dump re-encoded as it streams through and each part, then the manifest (with the
// stored files' sha256 and sizes) last. log, when not nil, receives the dump's progress
// ("encrypt progress").
func EncryptedCopy(ctx context.Context, b *Bundle, dst string, recipientList []string, log *slog.Logger) (*Bundle, error) {
	recipients, err := ParseRecipients(recipientList)
	if err != nil {
		return nil, err
	}
	if b.Manifest.Encrypted() {
		return nil, fmt.Errorf("encrypted copy of %s: the bundle is encrypted already", b.Dir)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return nil, err
	}
	m := b.Manifest
	m.FormatVersion = ManifestVersion
	m.Encryption = "age"
	m.DumpFile = DumpFileName(m.DumpFormat, true)
	m.Parts = nil
	err = func() error {
		in, err := os.Open(b.DumpPath())
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(dst, m.DumpFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		h := sha256.New()
		cw := &countWriter{}
		enc, err := age.Encrypt(io.MultiWriter(out, h, cw), recipients...)
		if err != nil {
			return err
		}
		meter := progress.Start(ctx, log, "encrypt progress", progress.Options{Total: m.SizeBytes, Attrs: []any{"bundle", b.Name()}})
		defer meter.Stop()
		if _, err := io.Copy(enc, ContextReader(ctx, meter.Reader(in))); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		m.SHA256, m.SizeBytes = hex.EncodeToString(h.Sum(nil)), cw.n
		return out.Sync()
	}()
	for _, p := range b.Manifest.Parts {
		if err != nil {
			break
		}
		if err = b.CheckPart(p); err != nil {
			break
		}
		var enc Part
		enc, err = WritePart(ctx, dst, FromFile(p.Role, p.File, b.PartPath(p)), recipients)
		m.Parts = append(m.Parts, enc)
	}
	if err == nil {
		err = WriteManifest(dst, m)
	}
	if err != nil {
		os.RemoveAll(dst)
		return nil, fmt.Errorf("encrypted copy in %s: %w", dst, err)
	}
	return &Bundle{Dir: dst, Manifest: m}, nil
}

// ParseRecipients reads age recipients (age1...).
func ParseRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range list {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("backup encryption recipient %q: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// countWriter counts what is written through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
