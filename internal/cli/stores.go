package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/store"
)

// stores builds the stores of the backup-store input: path:DIR, oci://registry/repo[:tag] and
// artifact. tempDir receives what a store unpacks. An error names the input and the fix;
// nothing has been touched when it is returned. Run as root with a workspace of another user
// (a container action), path stores give their bundles to the workspace's owner; artifacts
// are kept for retention-days. Every store logs the progress of its transfers to log.
func stores(cfg *config.Config, getenv func(string) string, tempDir string, log *slog.Logger) ([]bundle.Store, error) {
	var out []bundle.Store
	for _, s := range cfg.BackupStores {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "path:"):
			out = append(out, bundle.DirStore{Dir: strings.TrimSpace(strings.TrimPrefix(s, "path:")), Owner: bundle.WorkspaceOwner(getenv), Log: log})
		case strings.HasPrefix(s, "oci://"):
			out = append(out, store.OCI{Ref: s, Username: cfg.RegistryUsername, Password: cfg.RegistryPassword, TempDir: tempDir, Log: log})
		case s == "artifact":
			if err := store.Available(getenv); err != nil {
				return nil, fmt.Errorf("backup-store %q: %w", s, err)
			}
			out = append(out, store.Artifact{Getenv: getenv, TempDir: tempDir, RetentionDays: cfg.RetentionDays, Log: log})
		default:
			return nil, fmt.Errorf("backup-store %q is not path:DIR, oci://registry/repo[:tag] or artifact", s)
		}
	}
	return out, nil
}

// openBundle brings the bundle of restore's --from to a local directory: a bundle directory
// as it is, an oci:// reference pulled, or (as an action) an artifact name downloaded; with
// run-id, the artifact of that workflow run, through the REST API with github-token. The
// download's progress goes to log.
func openBundle(ctx context.Context, cfg *config.Config, getenv func(string) string, tempDir string, log *slog.Logger) (string, error) {
	from := strings.TrimSpace(cfg.From)
	switch {
	case cfg.RunID != 0:
		b, err := store.Artifact{Getenv: getenv, TempDir: tempDir, RunID: cfg.RunID, Token: cfg.GitHubToken, Log: log}.Open(ctx, from)
		if err != nil {
			return "", err
		}
		return b.Dir, nil
	case strings.HasPrefix(from, "oci://"):
		b, err := store.OCI{Username: cfg.RegistryUsername, Password: cfg.RegistryPassword, TempDir: tempDir, Log: log}.Open(ctx, from)
		if err != nil {
			return "", err
		}
		return b.Dir, nil
	}
	if st, err := os.Stat(from); err == nil && st.IsDir() {
		return from, nil
	}
	if err := store.Available(getenv); err != nil {
		return "", fmt.Errorf("from %q is not a bundle directory, and not an artifact name either: %w", from, err)
	}
	b, err := store.Artifact{Getenv: getenv, TempDir: tempDir, Log: log}.Open(ctx, from)
	if err != nil {
		return "", err
	}
	return b.Dir, nil
}
