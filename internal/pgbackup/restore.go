package pgbackup

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
)

// ErrNotStarted marks a restore that stopped before it changed the database (for example, the
// database could not be reached).
var ErrNotStarted = errors.New("nothing was restored")

// Untouched reports whether a Restore error left the target database as it was.
func Untouched(err error) bool {
	return errors.Is(err, ErrBundleRefused) || errors.Is(err, ErrNotStarted)
}

// RestoreOptions says where and how to restore.
type RestoreOptions struct {
	// ConnString is the target database; its user should own the database's objects.
	ConnString string
	// Identity is the age identity file content (AGE-SECRET-KEY-1...) for an encrypted bundle.
	Identity string
	// Jobs is the number of parallel pg_restore jobs for a custom dump: 0 means DefaultJobs,
	// 1 restores in one transaction. A plain dump is always restored in one transaction.
	// With more than one job a failed restore leaves the database partly restored (with one
	// job it leaves it emptied: the current objects are dropped before pg_restore starts);
	// either way the remedy is to run the restore again.
	Jobs  int
	Tools Tools
	// TempDir holds the decompressed custom archive during the restore (default os.TempDir).
	TempDir string
}

// DefaultJobs is the number of parallel pg_restore jobs when RestoreOptions.Jobs is 0: table
// data and index builds proceed two at a time, which a database server of two or more cores
// absorbs.
const DefaultJobs = 2

// restoreSettings are session settings for the restoring sessions, given to psql and
// pg_restore through PGOPTIONS: larger sort memory for the index and constraint builds, and no
// wait for the WAL flush at each commit (a crash during a restore means restoring again
// anyway). A non-superuser may set both.
const restoreSettings = "-c synchronous_commit=off -c maintenance_work_mem=256MB"

// Restore restores the bundle in dir into the database. Before it touches the database it
// checks the manifest, the dump file's size and sha256, and that the dump decrypts and
// decompresses whole; a bundle that fails any of these is refused (ErrBundleRefused). Then it
// drops every object of the public schema the connecting role owns, restores, and checks the
// row count of every table against the manifest.
func Restore(ctx context.Context, dir string, opts RestoreOptions) (*Manifest, error) {
	b, err := OpenBundle(dir)
	if err != nil {
		return nil, err
	}
	m := &b.Manifest
	refuse := func(format string, args ...any) (*Manifest, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrBundleRefused, dir, fmt.Sprintf(format, args...))
	}
	var identities []age.Identity
	if m.Encryption == "age" {
		if strings.TrimSpace(opts.Identity) == "" {
			return refuse("the dump is encrypted with age; give the age identity (backup-identity)")
		}
		if identities, err = age.ParseIdentities(strings.NewReader(opts.Identity)); err != nil {
			return refuse("the age identity does not parse (give the content of an age identity file)")
		}
	}
	env, pgcfg, err := connEnv(opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}
	env = append(env, "PGOPTIONS="+restoreSettings)
	tempDir, err := os.MkdirTemp(opts.TempDir, "identity-upgrade-restore-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}
	defer os.RemoveAll(tempDir)

	// Decode the whole dump once before anything changes, checking the file's size and sha256
	// in the same read: a wrong key or damaged data is found here. A custom archive is kept
	// decoded for pg_restore, which needs a file.
	var archive string
	sink := io.Discard
	if m.DumpFormat == FormatCustom {
		archive = filepath.Join(tempDir, "dump.pgcustom")
		f, err := os.OpenFile(archive, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
		}
		defer f.Close()
		sink = f
	}
	if err := decodeDump(ctx, b, identities, sink, m.DumpFormat == FormatPlain); err != nil {
		if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
		}
		return refuse("%v", err)
	}

	conn, err := pgx.Connect(ctx, opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to database %q on %s:%d: %v", ErrNotStarted, pgcfg.Database, pgcfg.Host, pgcfg.Port, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// From here on the database changes.
	if m.DumpFormat == FormatPlain {
		err = restorePlain(ctx, b, identities, env, opts.Tools)
	} else {
		err = restoreCustom(ctx, conn, archive, pgcfg.Database, env, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s into database %q: %w", dir, pgcfg.Database, err)
	}
	got, err := rowCounts(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("verify restore: %w", err)
	}
	if diff := countDiff(m.RowCounts, got); diff != "" {
		return nil, fmt.Errorf("verify restore into database %q: row counts differ from the manifest: %s", pgcfg.Database, diff)
	}
	return m, nil
}

// fileSum hashes and counts the raw dump file as it is read.
type fileSum struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newFileSum(r io.Reader) *fileSum { return &fileSum{r: r, h: sha256.New()} }

func (s *fileSum) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// check reads what the decoder left of the file and compares its size and sha256 with the
// manifest.
func (s *fileSum) check(ctx context.Context, m *Manifest) error {
	if _, err := io.Copy(io.Discard, ctxReader{ctx, s}); err != nil {
		return fmt.Errorf("read dump file: %w", err)
	}
	if s.n != m.SizeBytes {
		return fmt.Errorf("dump file %s is %d bytes, the manifest says %d: truncated or replaced", m.DumpFile, s.n, m.SizeBytes)
	}
	if sum := hex.EncodeToString(s.h.Sum(nil)); sum != m.SHA256 {
		return fmt.Errorf("dump file %s has sha256 %s, the manifest says %s: the file is damaged or not this bundle's", m.DumpFile, sum, m.SHA256)
	}
	return nil
}

// checkDumpFile compares the dump file's size and sha256 with the manifest.
func checkDumpFile(ctx context.Context, b *Bundle) error {
	f, err := os.Open(b.DumpPath())
	if err != nil {
		return fmt.Errorf("dump file: %w", err)
	}
	defer f.Close()
	return newFileSum(f).check(ctx, &b.Manifest)
}

// openDump returns the decrypted, decompressed dump stream.
func openDump(b *Bundle, identities []age.Identity) (io.Reader, func(), error) {
	f, err := os.Open(b.DumpPath())
	if err != nil {
		return nil, nil, err
	}
	r, done, err := decoder(f, identities)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() { done(); f.Close() }, nil
}

// decoder decrypts (with identities) and decompresses the raw dump read from raw.
func decoder(raw io.Reader, identities []age.Identity) (io.Reader, func(), error) {
	var r io.Reader = bufio.NewReaderSize(raw, 1<<20)
	if len(identities) > 0 {
		dec, err := age.Decrypt(r, identities...)
		if err != nil {
			var noMatch *age.NoIdentityMatchError
			if errors.As(err, &noMatch) {
				return nil, nil, errors.New("the age identity given does not decrypt this bundle (it was encrypted to other recipients)")
			}
			return nil, nil, fmt.Errorf("decrypt: %w", err)
		}
		r = dec
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
	if err != nil {
		return nil, nil, err
	}
	return zr, zr.Close, nil
}

// decodeDump reads the whole dump into sink, checking the file's size and sha256 against the
// manifest in the same read, that a plain dump ends with its trailer and that a custom one
// starts with its magic. When the decode fails, a damaged file is named as the cause.
func decodeDump(ctx context.Context, b *Bundle, identities []age.Identity, sink io.Writer, plain bool) error {
	f, err := os.Open(b.DumpPath())
	if err != nil {
		return fmt.Errorf("dump file: %w", err)
	}
	defer f.Close()
	sum := newFileSum(f)
	err = decodeFrom(ctx, sum, identities, sink, plain)
	if err != nil && ctx.Err() == nil {
		// A wrong key and a damaged file both fail the decode; the checksum tells which.
		if sumErr := checkDumpFile(ctx, b); sumErr != nil {
			return sumErr
		}
		return err
	}
	if err != nil {
		return err
	}
	return sum.check(ctx, &b.Manifest)
}

func decodeFrom(ctx context.Context, raw io.Reader, identities []age.Identity, sink io.Writer, plain bool) error {
	r, done, err := decoder(raw, identities)
	if err != nil {
		return err
	}
	defer done()
	var complete bool
	if plain {
		complete, err = filterPlain(sink, ctxReader{ctx, r})
	} else {
		var head headWriter
		_, err = io.Copy(io.MultiWriter(sink, &head), ctxReader{ctx, r})
		complete = bytes.HasPrefix(head.b, []byte("PGDMP"))
	}
	if err != nil {
		return fmt.Errorf("decode dump: %w", err)
	}
	if !complete {
		return errors.New("the decoded dump is incomplete")
	}
	return nil
}

// cleanSQL drops every table, view, sequence, routine and type of the public schema that the
// current role may drop (it owns it), so that objects a newer Keycloak added are gone after
// the restore: --clean only drops what is in the dump. The schema itself stays (its owner may
// be another role).
const cleanSQL = `DO $clean$
DECLARE stmt text;
BEGIN
  SET LOCAL search_path = pg_catalog;
  FOR stmt IN
    SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
        CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
          WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND pg_has_role(c.relowner, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND pg_has_role(p.proowner, 'USAGE') AND p.prokind <> 'a'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', 'public', t.typname)
    FROM pg_type t
    WHERE t.typnamespace = 'public'::regnamespace AND pg_has_role(t.typowner, 'USAGE')
      AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE stmt;
  END LOOP;
END
$clean$;
`

// restorePlain feeds the cleaning statement and the decoded dump to one psql session in one
// transaction: it restores all or nothing.
func restorePlain(ctx context.Context, b *Bundle, identities []age.Identity, env []string, tools Tools) error {
	r, done, err := openDump(b, identities)
	if err != nil {
		return err
	}
	defer done()
	pr, pw := io.Pipe()
	go func() {
		// filterPlain writes a line at a time; unbuffered, every line would be one handover
		// through the pipe and one write to psql.
		w := bufio.NewWriterSize(pw, 1<<20)
		_, err := io.WriteString(w, cleanSQL)
		if err == nil {
			_, err = filterPlain(w, r)
		}
		if err == nil {
			err = w.Flush()
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	cmd, tail := command(ctx, tools.psql(), env,
		"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-")
	cmd.Stdin = pr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return runErr("psql", err, tail)
	}
	return nil
}

// tocSeed matches the entries of a custom archive's table of contents that the plain filter
// drops: the public schema and the plpgsql extension, which a non-superuser cannot recreate.
var tocSeed = regexp.MustCompile(`^\d+; \d+ \d+ (SCHEMA - public|COMMENT - SCHEMA public|ACL - SCHEMA public|EXTENSION - plpgsql|COMMENT - EXTENSION plpgsql)( |$)`)

func restoreCustom(ctx context.Context, conn *pgx.Conn, archive, database string, env []string, opts RestoreOptions) error {
	list, err := run(ctx, opts.Tools.pgRestore(), env, "--list", archive)
	if err != nil {
		return err
	}
	var kept bytes.Buffer
	for line := range strings.Lines(string(list)) {
		if !tocSeed.MatchString(line) {
			kept.WriteString(line)
		}
	}
	listFile := archive + ".list"
	if err := os.WriteFile(listFile, kept.Bytes(), 0o600); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, cleanSQL); err != nil {
		return fmt.Errorf("drop the current objects: %w", err)
	}
	args := []string{"--no-password", "--no-owner", "--no-acl", "--clean", "--if-exists", "--exit-on-error",
		"--use-list=" + listFile, "--dbname=" + conninfoDBName(database)}
	if jobs := cmp.Or(opts.Jobs, DefaultJobs); jobs > 1 {
		args = append(args, "--jobs="+strconv.Itoa(jobs))
	} else {
		args = append(args, "--single-transaction")
	}
	_, err = run(ctx, opts.Tools.pgRestore(), env, append(args, archive)...)
	return err
}

// conninfoDBName names only the database, as a conninfo string: a name containing '=' or
// starting with postgres:// would otherwise be read as a connection string.
func conninfoDBName(name string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "dbname='" + r.Replace(name) + "'"
}

// countDiff describes how got differs from want, or returns "".
func countDiff(want, got map[string]int64) string {
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if n, ok := got[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s missing", name))
		} else if n != want[name] {
			diffs = append(diffs, fmt.Sprintf("%s has %d rows, want %d", name, n, want[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s is not in the backup", name))
		}
	}
	return strings.Join(diffs, "; ")
}
