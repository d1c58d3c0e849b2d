package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Engine is the database port of the upgrade pipeline (rollout.Databaser): it backs up into a
// local working copy, which the run restores from on failure, and puts a copy in every store,
// encrypted when recipients are given.
type Engine struct {
	ConnString string
	Format     string
	// Recipients encrypt the stored copies; the working copy stays plaintext and private.
	Recipients []string
	// WorkDir holds the working copy (the caller removes it when the run ends).
	WorkDir string
	// Stores keep the backup: directories, artifacts, registries.
	Stores []bundle.Store
	Jobs   int
	// Tools are the client tools; when empty, Inspect (or the first backup or restore)
	// chooses them with Clients for the server's major.
	Tools   Tools
	Clients ClientChooser
	// Identity decrypts a stored copy that a recovery restores from (when no working copy
	// is left): the backup-identity input.
	Identity string
	Now      func() time.Time
	// Log receives the progress of the dump, the encrypted copy and the restore at Info;
	// nil logs nothing. The stores log their own (their Log fields).
	Log *slog.Logger
	// Session tags every session, bounds the lock waits and says how often a backup, a
	// restore and a connection check are tried (Session.Log, when nil, is Log).
	Session Session

	client        Client // the client Inspect chose, if it did
	storesChecked bool   // bundle.CheckStores found every store usable
}

var _ rollout.Databaser = (*Engine)(nil)

// Inspect reads the database facts of the preflight and chooses the client tools for the
// server, unless Tools are set. Then it checks every store (CheckStores): a store that could
// not take the backup fails the preflight, before anything is changed.
func (e *Engine) Inspect(ctx context.Context) (rollout.Database, error) {
	db, client, err := Inspector{ConnString: e.ConnString, Clients: e.Clients, Session: e.session()}.inspect(ctx)
	if err != nil {
		return db, err
	}
	if e.Tools == (Tools{}) && client.Dir != "" {
		e.Tools, e.client = client.Tools(), client
	}
	return db, e.CheckStores(ctx)
}

// CheckStores checks that every store could take the backup now (Store.Check), and names
// each one that could not. Once they all passed, it does not check them again.
func (e *Engine) CheckStores(ctx context.Context) error {
	if e.storesChecked {
		return nil
	}
	if err := bundle.CheckStores(ctx, e.Stores); err != nil {
		return err
	}
	e.storesChecked = true
	return nil
}

// session is e.Session, logging to e.Log unless it has a log of its own.
func (e *Engine) session() Session {
	s := e.Session
	if s.Log == nil {
		s.Log = e.Log
	}
	return s
}

// tools returns the client tools, choosing them first when the preflight did not.
func (e *Engine) tools(ctx context.Context) (Tools, error) {
	if e.Tools != (Tools{}) {
		return e.Tools, nil
	}
	db, err := e.Inspect(ctx)
	if err != nil {
		return Tools{}, err
	}
	if db.ClientProblem != "" {
		return Tools{}, errors.New(db.ClientProblem)
	}
	return e.Tools, nil
}

// Backup takes the backup into the working directory and copies it to the stores.
func (e *Engine) Backup(ctx context.Context, req rollout.BackupRequest) (rollout.Backup, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	name := req.Name
	if name == "" {
		name = bundle.DefaultName(fmt.Sprintf("%s-r%d", req.Release.Name, req.Release.Revision), now())
	}
	tools, err := e.tools(ctx)
	if err != nil {
		return rollout.Backup{}, err
	}
	opts := BackupOptions{
		ConnString: e.ConnString, Format: e.Format, Tools: tools, Now: e.Now, Log: e.Log, Session: e.session(),
		Release: req.Release.Name, Revision: req.Release.Revision, ChartVersion: req.Release.ChartVersion,
	}
	if req.Release.Revision > 0 {
		opts.Parts = []bundle.Source{
			bundle.Bytes(bundle.PartReleaseValues, bundle.ReleaseValuesFile, req.Values),
			bundle.Bytes(bundle.PartReleaseManifest, bundle.ReleaseManifestFile, []byte(req.Release.Manifest)),
		}
	}
	if c := req.Customizations; c != nil && c.Dir != "" {
		// Packed once beside the working copy, then written into the bundle as a part.
		packed := filepath.Join(e.WorkDir, name+"."+bundle.CustomizationsFile)
		idx, err := bundle.PackCustomizations(ctx, c.Dir, packed)
		if err != nil {
			return rollout.Backup{}, err
		}
		defer os.Remove(packed)
		opts.Parts = append(opts.Parts, bundle.FromFile(bundle.PartCustomizations, bundle.CustomizationsFile, packed))
		opts.Customizations = &idx
	}
	b, err := Backup(ctx, filepath.Join(e.WorkDir, name), opts)
	if err != nil {
		return rollout.Backup{}, err
	}
	out := rollout.Backup{
		Name: name, Dir: b.Dir, SHA256: b.Manifest.SHA256, Bytes: b.Manifest.SizeBytes,
		Schema: b.Manifest.Schema.State(), Tables: len(b.Manifest.RowCounts),
	}
	for _, n := range b.Manifest.RowCounts {
		out.Rows += n
	}
	if req.WorkingCopyOnly {
		return out, nil
	}
	// The stores get the encrypted form when there are recipients: one encrypted copy, made
	// once beside the working copy.
	stored := b
	if len(e.Recipients) > 0 && len(e.Stores) > 0 {
		dir := filepath.Join(e.WorkDir, "encrypted", name)
		if stored, err = bundle.EncryptedCopy(ctx, b, dir, e.Recipients, e.Log); err != nil {
			return out, fmt.Errorf("store the backup: %w", err)
		}
		// The reported sha256 and size are those of the stored form.
		out.SHA256, out.Bytes = stored.Manifest.SHA256, stored.Manifest.SizeBytes
	}
	out.Encrypted, out.Secrets = stored.Manifest.Encrypted(), secretParts(stored.Manifest)
	if !out.Encrypted && len(out.Secrets) > 0 && len(e.Stores) > 0 && e.Log != nil {
		e.Log.Warn("the backup is stored unencrypted: it holds secrets in plain text (give backup-encryption-recipients)",
			"bundle", name, "holds", strings.Join(out.Secrets, "; "))
	}
	for _, s := range e.Stores {
		p, err := bundle.Place(ctx, s, stored)
		if err != nil {
			return out, fmt.Errorf("store the backup: %w", err)
		}
		out.Locations = append(out.Locations, p.Location)
		if p.ArtifactID != 0 && out.ArtifactID == 0 {
			out.ArtifactID, out.ArtifactURL = p.ArtifactID, p.ArtifactURL
		}
	}
	return out, nil
}

// secretParts says what in a bundle carries secrets, for a report of a plaintext bundle.
func secretParts(m bundle.Manifest) []string {
	var out []string
	for _, p := range m.Parts {
		switch p.Role {
		case bundle.PartReleaseValues:
			out = append(out, "the release's values")
		case bundle.PartReleaseManifest:
			out = append(out, "the release's rendered manifest, with its Secrets")
		case bundle.PartCustomizations:
			if c := m.Customizations; c != nil {
				if n, names := c.Count(bundle.ItemSecret); n > 0 {
					out = append(out, fmt.Sprintf("the Secrets Keycloak's pods reference (%s)", strings.Join(names, ", ")))
				}
			}
		}
	}
	return out
}

// Drift says what was written to the database since the backup, or "" when nothing was: a
// Keycloak migration (the schema state), rows inserted, updated or deleted, tables created or
// dropped, sequences moved, definitions changed (contentChanges). Changes in place are seen
// as well as changes in number: an updated row is a new row version, younger than the
// backup's snapshot.
func (e *Engine) Drift(ctx context.Context, bk rollout.Backup) (string, error) {
	var drift string
	err := e.withDatabase(ctx, "drift", bk, func(ctx context.Context, b *bundle.Bundle, conn *pgx.Conn) error {
		migrated, err := migration(ctx, conn, &b.Manifest)
		if err != nil || migrated != "" {
			drift = migrated
			return err
		}
		changes, err := contentChanges(ctx, conn, &b.Manifest)
		if err == nil && changes != "" {
			drift = "data changed: " + changes
		}
		return err
	})
	return drift, err
}

// withDatabase opens the backup's bundle, connects to the database and runs read, a reading
// that changes nothing: when the connection breaks it is tried again (a connection check,
// Session.Retry).
func (e *Engine) withDatabase(ctx context.Context, purpose string, bk rollout.Backup, read func(context.Context, *bundle.Bundle, *pgx.Conn) error) error {
	b, err := bundle.Open(bk.Dir)
	if err != nil {
		return err
	}
	s := e.session()
	cfg, err := pgconn.ParseConfig(e.ConnString)
	if err != nil {
		return errors.New("parse database connection string: invalid (check database-url or the db-* inputs)")
	}
	return s.retry(ctx, "database "+purpose, func() string { return s.route(cfg) }, false, func(ctx context.Context, n int) error {
		conn, err := s.connect(ctx, e.ConnString, purpose, n)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return read(ctx, b, conn)
	})
}

// migration says how Keycloak's schema state differs from the manifest's, or "".
func migration(ctx context.Context, conn *pgx.Conn, m *bundle.Manifest) (string, error) {
	schema, err := schemaState(ctx, conn)
	if err != nil {
		return "", err
	}
	if was := m.Schema.State(); schema != was {
		return fmt.Sprintf("Keycloak migrated the schema: %d changesets (latest %q) → %d (latest %q)",
			was.ChangelogRows, was.LatestChangeID, schema.ChangelogRows, schema.LatestChangeID), nil
	}
	return "", nil
}

// Restore restores the working copy, and says with which client tools and what it left out.
func (e *Engine) Restore(ctx context.Context, bk rollout.Backup) (string, error) {
	opts := RestoreOptions{ConnString: e.ConnString, Jobs: e.Jobs, Tools: e.Tools, Clients: e.Clients, TempDir: e.WorkDir, Identity: e.Identity, Log: e.Log, Session: e.session()}
	if e.client.Dir != "" {
		// Chosen again, for the target server and the dump's pg_dump: the same client, named
		// in the report.
		opts.Tools = Tools{}
	}
	r, err := RestoreBundle(ctx, bk.Dir, opts)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// Verify checks that the database equals the backup after a restore: Keycloak's schema
// state, the tables and their row counts, the sequences and the definitions (a restore writes
// every row anew, so row versions say nothing here; the restore checked each table's rows
// before it committed).
func (e *Engine) Verify(ctx context.Context, bk rollout.Backup) error {
	diff, err := e.verify(ctx, bk)
	if err != nil {
		return fmt.Errorf("verify the database: %w", err)
	}
	if diff != "" {
		return fmt.Errorf("verify the database: it differs from the backup %s: %s", bk.Name, diff)
	}
	return nil
}

func (e *Engine) verify(ctx context.Context, bk rollout.Backup) (string, error) {
	var diff string
	err := e.withDatabase(ctx, "verify", bk, func(ctx context.Context, b *bundle.Bundle, conn *pgx.Conn) error {
		migrated, err := migration(ctx, conn, &b.Manifest)
		if err != nil || migrated != "" {
			diff = migrated
			return err
		}
		counts, err := rowCounts(ctx, conn)
		if err != nil {
			return err
		}
		diffs := []string{}
		if d := countDiff(b.Manifest.RowCounts, counts); d != "" {
			diffs = append(diffs, "data changed: "+d)
		}
		if b.Manifest.Content != nil {
			defs, err := definitionChanges(ctx, conn, b.Manifest.Content)
			if err != nil {
				return err
			}
			diffs = append(diffs, defs...)
		}
		diff = strings.Join(diffs, "; ")
		return nil
	})
	return diff, err
}
