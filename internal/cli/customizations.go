package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/keycloak"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// checkEmptyDir refuses a customizations-to that holds something: nothing is overwritten.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("customizations-to %q: %w; give an empty or new directory", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("customizations-to %q is not empty; give an empty or new directory (nothing is overwritten)", dir)
	}
	return nil
}

// writeCustomizations writes the customizations part of the bundle in dir to customizations-to,
// decrypted with backup-identity when the bundle is encrypted, and says what it wrote.
func writeCustomizations(ctx context.Context, dir string, cfg *config.Config, stdout io.Writer, log *slog.Logger) error {
	b, err := bundle.Open(dir)
	if err != nil {
		return err
	}
	if b.Manifest.Customizations == nil {
		return fmt.Errorf("customizations-to: bundle %s holds no customizations (it was taken without them, or by an older identity-upgrade)", cfg.From)
	}
	ids, err := bundle.ParseIdentities(cfg.BackupIdentity)
	if err != nil {
		return fmt.Errorf("backup-identity: %w", err)
	}
	rc, err := b.OpenPart(bundle.PartCustomizations, ids)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := bundle.UnpackCustomizations(ctx, rc, cfg.CustomizationsTo)
	if err != nil {
		return fmt.Errorf("write the customizations to %s: %w", cfg.CustomizationsTo, err)
	}
	idx := *b.Manifest.Customizations
	log.InfoContext(ctx, "customizations written", "to", cfg.CustomizationsTo, "files", n)
	layout := "by kind"
	if idx.Source == bundle.SourceHome {
		layout = "laid out like a Keycloak home: copy them into the new version's"
	}
	fmt.Fprintf(stdout, "customizations written to %s (%d files, %s)\n", cfg.CustomizationsTo, n, layout)
	for _, s := range keycloak.Summary(idx) {
		fmt.Fprintf(stdout, "  %s\n", s)
	}
	return nil
}

// runInspect says what a bundle holds, from its manifest: what was dumped and how, its files
// with their checksums, and its customizations by name. It reads no content and needs no key.
func runInspect(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger, act *ghaction.Action) int {
	started := time.Now()
	refused := refuser("inspect", "", started, cfg, act, stderr)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	work, err := workDir(getenv)
	if err != nil {
		return refused(err)
	}
	defer os.RemoveAll(work)
	dir, err := openBundle(ctx, cfg, getenv, work, log)
	if err != nil {
		return refused(err)
	}
	b, err := bundle.Open(dir)
	if err != nil {
		return refused(err)
	}
	warn(stderr, "write the bundle's contents", writeInspect(stdout, cfg.From, b))
	return rollout.ExitOK
}

// writeInspect writes what a bundle holds.
func writeInspect(w io.Writer, from string, b *bundle.Bundle) error {
	m := b.Manifest
	var s strings.Builder
	fmt.Fprintf(&s, "bundle %s (format %d), taken %s\n", from, m.FormatVersion, m.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(&s, "  database: %s, PostgreSQL %s, pg_dump %s, %s dump, %d tables\n", m.Database, m.ServerVersion, m.PgDumpVersion, m.DumpFormat, len(m.RowCounts))
	if m.Release != "" {
		fmt.Fprintf(&s, "  release: %s revision %d, chart %s\n", m.Release, m.Revision, m.ChartVersion)
	}
	enc := "none: the files are plaintext"
	if m.Encrypted() {
		enc = "age, every file but the manifest"
	}
	fmt.Fprintf(&s, "  encryption: %s\n", enc)
	tw := tabwriter.NewWriter(&s, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  dump\t%s\t%d bytes\tsha256 %s\n", m.DumpFile, m.SizeBytes, m.SHA256)
	for _, p := range m.Parts {
		fmt.Fprintf(tw, "  %s\t%s\t%d bytes\tsha256 %s\n", p.Role, p.File, p.SizeBytes, p.SHA256)
	}
	tw.Flush()
	if c := m.Customizations; c != nil {
		fmt.Fprintf(&s, "customizations (%s): %d files, %d bytes\n", c.Source, c.Files, c.Bytes)
		tw := tabwriter.NewWriter(&s, 0, 4, 2, ' ', 0)
		for _, it := range c.Items {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", it.Kind, it.Name, it.Path, it.Origin)
		}
		tw.Flush()
		for _, u := range c.ThemeUses {
			fmt.Fprintf(&s, "  realm %s uses %s theme %q (%s)\n", u.Realm, u.Kind, u.Theme, u.Origin)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(&s, "  note: %s\n", n)
		}
		for _, it := range c.Items {
			if it.Note != "" {
				fmt.Fprintf(&s, "  note on %s %s: %s\n", it.Kind, it.Name, it.Note)
			}
		}
	}
	_, err := io.WriteString(w, s.String())
	return err
}
