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
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/klauspost/compress/zstd"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// ErrNotStarted marks a restore that stopped before it changed the database (for example, the
// database could not be reached).
var ErrNotStarted = errors.New("nothing was restored")

// ErrOlderServer marks a restore refused because the target server is of an older major than
// the server the dump was taken from: such a dump may use what the older server lacks.
var ErrOlderServer = errors.New("the target server is older than the dump's source")

// Untouched reports whether a Restore error left the target database as it was.
func Untouched(err error) bool {
	return errors.Is(err, bundle.ErrRefused) || errors.Is(err, ErrNotStarted)
}

// RestoreOptions says where and how to restore.
type RestoreOptions struct {
	// ConnString is the target database; its user should own the database's objects.
	ConnString string
	// Identity is the age identity file content (AGE-SECRET-KEY-1...) for an encrypted bundle.
	Identity string
	// Jobs is the number of parallel pg_restore jobs for a custom dump: 0 means DefaultJobs.
	// With one job the archive streams through pg_restore into one transaction, as a plain
	// dump does: all or nothing, its rows checked before COMMIT. With more, pg_restore -j
	// restores from a decoded copy of the archive (in TempDir), and a failed restore leaves
	// the database partly restored; the remedy is to run the restore again.
	Jobs int
	// Tools are the client tools; when empty, Clients chooses them for the target server and
	// the dump (at least the major of the pg_dump that wrote it).
	Tools   Tools
	Clients ClientChooser
	// AllowOlderServer restores into a server of an older major than the dump's source
	// (refused otherwise, with ErrOlderServer).
	AllowOlderServer bool
	// TempDir holds the decoded custom archive of a restore with more than one job (default
	// os.TempDir).
	TempDir string
	// Log receives the restore's progress at Info ("restore progress": the dump file read so
	// far, of its size, and the rate) every ProgressInterval (0: progress.DefaultInterval) and
	// when the file was read; nil logs nothing.
	Log              *slog.Logger
	ProgressInterval time.Duration
	// Session tags the restore's sessions, bounds its lock waits and retries it when the way
	// to the database breaks (Session.Log, when nil, is Log).
	Session Session
}

// DefaultJobs is the number of pg_restore jobs when RestoreOptions.Jobs is 0. One: a restore
// that fails part-way leaves the database as it was, which a rollback needs more than speed,
// and on two cores parallel jobs were slower, two loading sessions contending for the same
// cores and WAL (bench/README.md).
const DefaultJobs = 1

// restoreSettings are session settings for the restoring sessions, given to psql and
// pg_restore through PGOPTIONS: no wait for the WAL flush at a commit (a crash during a
// restore means restoring again anyway). A non-superuser may set it. Sort memory for the index
// builds (maintenance_work_mem) is left to the server: more of it made restores no faster and
// cost more CPU (it allows a second parallel worker per index build; bench/README.md), and it
// could push a database pod with a small memory limit over it in the middle of a rollback.
const restoreSettings = "-c synchronous_commit=off"

// Restore restores the bundle in dir into the database. Before it changes the database it
// checks the manifest, the dump file's size and sha256, and that the dump decrypts and
// decompresses whole; a bundle that fails any of these is refused (bundle.ErrRefused). It
// drops every object of the public schema the connecting role owns, restores, and checks the
// row count of every table against the manifest. A plain dump, and a custom archive restored
// with one job, are checked as they stream into a transaction that commits only when the
// checks passed; for parallel jobs the archive is decoded and checked whole first, since
// pg_restore -j needs it as a file, and the rows are counted after.
func Restore(ctx context.Context, dir string, opts RestoreOptions) (*bundle.Manifest, error) {
	r, err := RestoreBundle(ctx, dir, opts)
	return r.Manifest, err
}

// Restored is what a restore did.
type Restored struct {
	Manifest *bundle.Manifest
	// ServerVersion is the target server's version.
	ServerVersion string
	// Client restored, when RestoreOptions.Clients chose it.
	Client Client
	// DroppedSettings are the session settings of the dump's header that the target server
	// does not know, which the restore left out.
	DroppedSettings []string
}

// String says how the restore went, for reports: the client tools, and the settings left out.
func (r Restored) String() string {
	var parts []string
	if r.Client.Dir != "" {
		parts = append(parts, fmt.Sprintf("PostgreSQL %s client tools into server %s", r.Client.Version, r.ServerVersion))
	}
	if len(r.DroppedSettings) > 0 {
		parts = append(parts, "left out settings the server does not know: "+strings.Join(r.DroppedSettings, ", "))
	}
	return strings.Join(parts, "; ")
}

// RestoreBundle is Restore, saying what it did. A restore whose connection breaks is tried
// again (opts.Session.Retry): it is one transaction (nothing was committed), or, when the
// break came after its COMMIT was sent, restoring it again whole gives the same database.
// Before each attempt the sessions the tool left behind holding locks are ended; a lock held
// by another session for longer than the lock timeout fails it with a *LockTimeoutError
// naming that session.
func RestoreBundle(ctx context.Context, dir string, opts RestoreOptions) (Restored, error) {
	if opts.Session.Log == nil {
		opts.Session.Log = opts.Log
	}
	cfg, err := pgconn.ParseConfig(opts.ConnString)
	if err != nil {
		return Restored{}, fmt.Errorf("%w: parse database connection string: invalid (check database-url or the db-* inputs)", ErrNotStarted)
	}
	var res Restored
	err = opts.Session.retry(ctx, "restore", func() string { return opts.Session.route(cfg) }, true, func(ctx context.Context, n int) error {
		var err error
		res, err = restoreAttempt(ctx, dir, opts, n)
		return err
	})
	return res, err
}

// restoreAttempt is attempt n of a restore.
func restoreAttempt(ctx context.Context, dir string, opts RestoreOptions, attempt int) (_ Restored, err error) {
	b, err := bundle.Open(dir)
	if err != nil {
		return Restored{}, err
	}
	m := &b.Manifest
	res := Restored{Manifest: m}
	refuse := func(format string, args ...any) (Restored, error) {
		return Restored{}, fmt.Errorf("%w: %s: %s", bundle.ErrRefused, dir, fmt.Sprintf(format, args...))
	}
	fail := func(err error) (Restored, error) { return Restored{}, err }
	var identities []age.Identity
	if m.Encryption == "age" {
		if strings.TrimSpace(opts.Identity) == "" {
			return refuse("the dump is encrypted with age; give the age identity (backup-identity)")
		}
		if identities, err = age.ParseIdentities(strings.NewReader(opts.Identity)); err != nil {
			return refuse("the age identity does not parse (give the content of an age identity file)")
		}
	}
	app := opts.Session.tag("restore", attempt)
	env, pgcfg, err := opts.Session.env(opts.ConnString, "restore", attempt, restoreSettings)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrNotStarted, err))
	}

	// For parallel jobs the custom archive is decoded whole before anything changes, checking
	// the file's size and sha256 in the same read (a wrong key or damaged data is found here),
	// and kept decoded for pg_restore -j, which needs a file. A streamed restore checks the
	// dump as it streams into its transaction instead, which commits only if the check passed.
	jobs := cmp.Or(opts.Jobs, DefaultJobs)
	streamed := m.DumpFormat == bundle.FormatPlain || jobs <= 1
	meterOpts := progress.Options{Interval: opts.ProgressInterval, Attrs: []any{"database", pgcfg.Database}}
	var archive string
	if !streamed {
		tempDir, err := os.MkdirTemp(opts.TempDir, "identity-upgrade-restore-")
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrNotStarted, err))
		}
		defer os.RemoveAll(tempDir)
		archive = filepath.Join(tempDir, "dump.pgcustom")
		f, err := os.OpenFile(archive, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrNotStarted, err))
		}
		defer f.Close()
		decodeOpts := meterOpts
		decodeOpts.Total = m.SizeBytes
		meter := progress.Start(ctx, opts.Log, "decode progress", decodeOpts)
		err = decodeDump(ctx, b, identities, f, meter)
		meter.Stop()
		if err != nil {
			if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
				return fail(fmt.Errorf("%w: %w", ErrNotStarted, err))
			}
			return refuse("%v", err)
		}
	}

	conn, err := opts.Session.connect(ctx, opts.ConnString, "restore", attempt)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrNotStarted, err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := opts.Session.clearLeft(ctx, conn, "restore"); err != nil {
		opts.Session.log().WarnContext(ctx, "could not end the sessions left behind; the restore may wait for their locks", "err", err)
	}
	target, err := readTarget(ctx, conn)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrNotStarted, err))
	}
	res.ServerVersion = target.version
	if source := majorOf(m.ServerVersion); target.major < source && !opts.AllowOlderServer {
		return fail(fmt.Errorf("%w: %w: the dump is of a PostgreSQL %s server and the target is %s; restore into a server of major %d or newer, or allow it with allow-older-server",
			ErrNotStarted, ErrOlderServer, m.ServerVersion, target.version, source))
	}
	tools := opts.Tools
	if tools == (Tools{}) {
		if res.Client, err = opts.Clients.Choose(ctx, target.major, majorOf(m.PgDumpVersion)); err != nil {
			return fail(fmt.Errorf("%w: %w", ErrNotStarted, err))
		}
		tools = res.Client.Tools()
	}

	// From here on the database changes (a streamed dump's only when its transaction
	// commits, its rows checked before). A watch notes who blocks the restore's sessions, for
	// the error if a lock wait times out, and stops the attempt if the server loses them.
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	defer func() { err = sessionsGone(ctx, err) }()
	watch := opts.Session.watchAttempt(ctx, opts.ConnString, app, attempt, abort)
	lockErr := func(err error) error {
		blockers := watch.stop()
		if err != nil && lockTimedOut(err) {
			return fmt.Errorf("%w: %w", ErrNotStarted, &LockTimeoutError{What: "restore", Timeout: opts.Session.lockTimeout(), Blockers: blockers, Err: err})
		}
		return err
	}
	if streamed {
		older := target.major < majorOf(m.ServerVersion)
		res.DroppedSettings, err = restoreStream(ctx, b, identities, env, tools, filterOptions{freeze: true, settings: target.settings, settingsAnywhere: older}, opts.Log, meterOpts)
		err = lockErr(err)
		var damaged *damagedError
		if errors.As(err, &damaged) {
			return refuse("%v", damaged.err)
		}
		if err != nil {
			return fail(fmt.Errorf("restore %s into database %q: %w", dir, pgcfg.Database, err))
		}
		return res, nil
	}
	if err := lockErr(restoreParallel(ctx, conn, archive, pgcfg.Database, env, jobs, tools)); err != nil {
		return fail(fmt.Errorf("restore %s into database %q: %w", dir, pgcfg.Database, err))
	}
	got, err := rowCounts(ctx, conn)
	if err != nil {
		return fail(fmt.Errorf("verify restore: %w", err))
	}
	if diff := countDiff(m.RowCounts, got); diff != "" {
		return fail(fmt.Errorf("verify restore into database %q: row counts differ from the manifest: %s", pgcfg.Database, diff))
	}
	return res, nil
}

// fileSum hashes and counts the raw dump file as it is read.
type fileSum struct {
	r io.Reader
	h hash.Hash
	n atomic.Int64 // read by a progress meter while the restore reads the file
}

func newFileSum(r io.Reader) *fileSum { return &fileSum{r: r, h: sha256.New()} }

func (s *fileSum) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n.Add(int64(n))
	return n, err
}

// check reads what the decoder left of the file and compares its size and sha256 with the
// manifest.
func (s *fileSum) check(ctx context.Context, m *bundle.Manifest) error {
	if _, err := io.Copy(io.Discard, bundle.ContextReader(ctx, s)); err != nil {
		return fmt.Errorf("read dump file: %w", err)
	}
	if n := s.n.Load(); n != m.SizeBytes {
		return fmt.Errorf("dump file %s is %d bytes, the manifest says %d: truncated or replaced", m.DumpFile, n, m.SizeBytes)
	}
	if sum := hex.EncodeToString(s.h.Sum(nil)); sum != m.SHA256 {
		return fmt.Errorf("dump file %s has sha256 %s, the manifest says %s: the file is damaged or not this bundle's", m.DumpFile, sum, m.SHA256)
	}
	return nil
}

// checkDumpFile compares the dump file's size and sha256 with the manifest.
func checkDumpFile(ctx context.Context, b *bundle.Bundle) error {
	f, err := os.Open(b.DumpPath())
	if err != nil {
		return fmt.Errorf("dump file: %w", err)
	}
	defer f.Close()
	return newFileSum(f).check(ctx, &b.Manifest)
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

// decodeDump reads the whole custom archive into sink, checking the file's size and sha256
// against the manifest in the same read and that the archive starts with its magic. When the
// decode fails, a damaged file is named as the cause. meter counts the file as it is read.
func decodeDump(ctx context.Context, b *bundle.Bundle, identities []age.Identity, sink io.Writer, meter *progress.Meter) error {
	f, err := os.Open(b.DumpPath())
	if err != nil {
		return fmt.Errorf("dump file: %w", err)
	}
	defer f.Close()
	sum := newFileSum(meter.Reader(f))
	err = decodeArchive(ctx, sum, identities, sink)
	if err != nil && ctx.Err() == nil {
		return blameFile(ctx, b, err)
	}
	if err != nil {
		return err
	}
	return sum.check(ctx, &b.Manifest)
}

// blameFile returns why the dump file does not match the manifest, or err when it does: a
// wrong key and a damaged file both fail a decode, and the checksum tells which.
func blameFile(ctx context.Context, b *bundle.Bundle, err error) error {
	if sumErr := checkDumpFile(ctx, b); sumErr != nil {
		return sumErr
	}
	return err
}

func decodeArchive(ctx context.Context, raw io.Reader, identities []age.Identity, sink io.Writer) error {
	r, done, err := decoder(raw, identities)
	if err != nil {
		return err
	}
	defer done()
	var head headWriter
	if _, err := io.CopyBuffer(io.MultiWriter(sink, &head), bundle.ContextReader(ctx, r), make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("decode dump: %w", err)
	}
	if !bytes.HasPrefix(head.b, []byte("PGDMP")) {
		return errors.New("the decoded dump is not a custom archive")
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

// damagedError is a bundle found damaged while it was streaming into a transaction that was
// then not committed.
type damagedError struct{ err error }

func (e *damagedError) Error() string { return e.err.Error() }

// restoreStream streams the cleaning statement and the decoded dump into one psql session, in
// one transaction that it commits only after the whole dump file was read and matched the
// manifest's size and sha256 and the dump ended with its trailer: it restores all or nothing,
// and a damaged file (a *damagedError) leaves the database as it was. The dump is read once.
// A custom archive passes through pg_restore on the way (archiveSQL), which writes it out as
// the SQL of a plain dump; the plain dump's filter then drops the same statements from both.
// log, when not nil, receives the progress ("restore progress"): the SQL written into psql,
// and how much of the dump file was read (dump_read).
func restoreStream(ctx context.Context, b *bundle.Bundle, identities []age.Identity, env []string, tools Tools, filter filterOptions, log *slog.Logger, meterOpts progress.Options) (dropped []string, _ error) {
	f, err := os.Open(b.DumpPath())
	if err != nil {
		return nil, &damagedError{fmt.Errorf("dump file: %w", err)}
	}
	defer f.Close()
	sum := newFileSum(f)
	meterOpts.Status = func() []any {
		return []any{"dump_read", fmt.Sprintf("%d%%", min(100, sum.n.Load()*100/max(1, b.Manifest.SizeBytes)))}
	}
	meter := progress.Start(ctx, log, "restore progress", meterOpts)
	defer meter.Stop()
	r, done, err := decoder(sum, identities)
	if err != nil {
		return nil, &damagedError{blameFile(ctx, b, err)}
	}
	defer done()

	// A custom archive becomes SQL in pg_restore, which starts before anything else.
	var sql io.Reader = bundle.ContextReader(ctx, r)
	var stopRestore func(abort bool) error
	if b.Manifest.DumpFormat == bundle.FormatCustom {
		if sql, stopRestore, err = archiveSQL(ctx, sql, env, tools); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotStarted, err)
		}
	}

	pr, pw := io.Pipe()
	// damage is what the stream found wrong with the bundle, and committed whether COMMIT
	// reached psql's input; both are set before pw is closed and read after the writer ended.
	var damage error
	var committed bool
	finished := make(chan struct{})
	// filterPlain writes a line at a time; unbuffered, every line would be one handover
	// through the pipe and one write to psql.
	out := &errWriter{w: meter.Writer(pw)}
	go func() {
		defer close(finished)
		w := bufio.NewWriterSize(out, 1<<20)
		io.WriteString(w, "BEGIN;\n"+cleanSQL)
		d, err := filterPlain(w, sql, filter)
		dropped = d.dropped
		if stopRestore != nil {
			// Whether pg_restore read the archive whole says more than what it wrote.
			err = cmp.Or(stopRestore(err != nil || out.err != nil), err)
		} else if err != nil {
			err = fmt.Errorf("decode dump: %w", err)
		}
		switch {
		case out.err != nil:
			// psql stopped reading; its own error says why.
		case err != nil:
			damage = blameFile(ctx, b, err)
		case !d.complete:
			damage = blameFile(ctx, b, errors.New("the decoded dump is incomplete"))
		default:
			damage = sum.check(ctx, &b.Manifest) // the rest of the file, then size and sha256
		}
		if damage == nil {
			// The rows are checked in the transaction: a difference fails it before COMMIT.
			io.WriteString(w, rowCheckSQL(b.Manifest.RowCounts)+"COMMIT;\n")
			committed = w.Flush() == nil
		}
		// Without COMMIT, psql ends at the end of its input and the server rolls back.
		pw.Close()
	}()
	cmd, tail := command(ctx, tools.psql(), env,
		"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--file=-")
	cmd.Stdin = pr
	cmd.Stdout = io.Discard
	psqlErr := cmd.Run()
	pr.CloseWithError(io.ErrClosedPipe) // a psql that stopped early unblocks the writer
	<-finished
	rowsDiff := ""
	if psqlErr != nil {
		rowsDiff = rowCheckFailure(tail.String())
	}
	switch {
	case psqlErr == nil && committed:
		return dropped, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: stopped: %w", ErrNotStarted, context.Cause(ctx))
	case damage != nil:
		return nil, &damagedError{damage}
	case rowsDiff != "":
		return nil, &damagedError{fmt.Errorf("the restored rows differ from the manifest: %s", rowsDiff)}
	case psqlErr != nil:
		// The transaction did not commit: nothing changed.
		return nil, &attemptError{err: fmt.Errorf("%w: %w", ErrNotStarted, runErr("psql", psqlErr, tail)), moved: out.n.Load()}
	default:
		return nil, fmt.Errorf("%w: psql ended before the end of the dump, and nothing was committed", ErrNotStarted)
	}
}

// errWriter passes writes on, counts what went through and keeps the first error.
type errWriter struct {
	w   io.Writer
	n   atomic.Int64
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.n.Add(int64(n))
	e.err = err
	return n, err
}

// tocSeed matches the entries of a custom archive's table of contents that the plain filter
// drops: the public schema and the plpgsql extension, which a non-superuser cannot recreate.
var tocSeed = regexp.MustCompile(`^\d+; \d+ \d+ (SCHEMA - public|COMMENT - SCHEMA public|ACL - SCHEMA public|EXTENSION - plpgsql|COMMENT - EXTENSION plpgsql)( |$)`)

// archiveSQL starts pg_restore writing the custom archive read from archive out as SQL, and
// returns that SQL. stop ends pg_restore (killing it when abort is set, that is when the SQL
// was not read to its end) and says whether the archive was read whole: a decode error, then
// pg_restore's own; after a clean exit it decodes what pg_restore left of the stream.
func archiveSQL(ctx context.Context, archive io.Reader, env []string, tools Tools) (sql io.Reader, stop func(abort bool) error, err error) {
	rctx, cancel := context.WithCancel(ctx)
	cmd, tail := command(rctx, tools.pgRestore(), env, "--no-owner", "--no-acl", "--clean", "--if-exists", "--file=-")
	in := &readErr{r: archive}
	cmd.Stdin = in
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("pg_restore: %w", err)
	}
	stop = func(abort bool) error {
		defer cancel()
		if abort {
			cancel()
		}
		err := cmd.Wait()
		switch {
		case abort:
			return nil
		case in.err != nil:
			return fmt.Errorf("decode dump: %w", in.err)
		case err != nil:
			return runErr("pg_restore", err, tail)
		}
		if _, err := io.Copy(io.Discard, archive); err != nil {
			return fmt.Errorf("decode dump: %w", err)
		}
		return nil
	}
	return out, stop, nil
}

// readErr passes reads on and keeps the first error other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// restoreParallel restores a decoded custom archive with pg_restore -j jobs. It excludes the
// entries of the archive's table of contents that the plain filter drops (tocSeed) through a
// list file next to the archive.
func restoreParallel(ctx context.Context, conn *pgx.Conn, archive, database string, env []string, jobs int, tools Tools) error {
	list, err := run(ctx, tools.pgRestore(), env, "--list", archive)
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
	_, err = run(ctx, tools.pgRestore(), env, "--no-password", "--no-owner", "--no-acl", "--clean", "--if-exists",
		"--exit-on-error", "--jobs="+strconv.Itoa(jobs), "--use-list="+listFile, "--dbname="+conninfoDBName(database), archive)
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

// target is what a restore learns of the server it restores into.
type target struct {
	version  string
	major    int
	settings map[string]bool // the names of its settings (pg_settings), lower case
}

func readTarget(ctx context.Context, conn *pgx.Conn) (target, error) {
	var t target
	var num int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int`).Scan(&t.version, &num); err != nil {
		return t, fmt.Errorf("read the server's version: %w", err)
	}
	t.major = num / 10000
	rows, err := conn.Query(ctx, `SELECT lower(name) FROM pg_catalog.pg_settings`)
	if err != nil {
		return t, fmt.Errorf("read the server's settings: %w", err)
	}
	t.settings = map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return t, fmt.Errorf("read the server's settings: %w", err)
		}
		t.settings[name] = true
	}
	return t, rows.Err()
}

// majorOf is the major number of a PostgreSQL version string ("11.22" → 11, "17.6 (Debian
// 17.6-1)" → 17), 0 when it has none.
func majorOf(version string) int {
	n := 0
	for _, c := range version {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
