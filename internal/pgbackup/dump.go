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
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/klauspost/compress/zstd"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgarchive"
	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// ErrIncomplete marks a dump that did not finish: pg_dump failed or was killed, or its output
// ended early. No manifest is written for it.
var ErrIncomplete = errors.New("the dump is incomplete; no bundle was written")

// BackupOptions says what to dump and how.
type BackupOptions struct {
	// ConnString is a postgres:// URL or key=value DSN; it may carry the password.
	ConnString string
	// Format is FormatCustom (default) or FormatPlain.
	Format string
	// Recipients are age recipients (age1...); the dump is encrypted to them. None: plaintext.
	Recipients []string
	Tools      Tools
	// Release, Revision and ChartVersion are recorded in the manifest.
	Release      string
	Revision     int
	ChartVersion string
	// Parts are written into the bundle beside the dump (the release's values and manifest,
	// the customizations), encrypted like it.
	Parts []bundle.Source
	// Customizations is the index of a customizations part among Parts, for the manifest.
	Customizations *bundle.Customizations
	// Now gives the creation time (default time.Now).
	Now func() time.Time
	// Log receives the dump's progress at Info ("backup progress": pg_dump's output so far
	// and its rate) every ProgressInterval (0: progress.DefaultInterval) and when it ends;
	// nil logs nothing.
	Log              *slog.Logger
	ProgressInterval time.Duration
	// Session tags the backup's sessions, bounds its lock waits and retries it when the way to
	// the database breaks (Session.Log, when nil, is Log).
	Session Session
}

// Backup dumps the database into a new bundle directory dir, which must not exist. The dump
// is streamed: pg_dump → (plain: seed filter) → zstd → (age) → sha256 → file, and its row
// counts are read in the very snapshot pg_dump dumps. The manifest is written last, only after
// pg_dump succeeded and the dump was checked complete; on any failure dir is removed.
//
// A backup whose connection breaks is taken again, from a new snapshot (opts.Session.Retry).
// Before each attempt the sessions the tool left behind holding locks are ended; a lock held
// by another session for longer than the lock timeout fails it with a *LockTimeoutError
// naming that session.
func Backup(ctx context.Context, dir string, opts BackupOptions) (*bundle.Bundle, error) {
	if opts.Session.Log == nil {
		opts.Session.Log = opts.Log
	}
	cfg, err := pgconn.ParseConfig(opts.ConnString)
	if err != nil {
		return nil, errors.New("parse database connection string: invalid (check database-url or the db-* inputs)")
	}
	var b *bundle.Bundle
	err = opts.Session.retry(ctx, "backup", func() string { return opts.Session.route(cfg) }, false, func(ctx context.Context, n int) error {
		var err error
		b, err = backupAttempt(ctx, dir, opts, n)
		return err
	})
	return b, err
}

// backupAttempt is attempt n of a backup.
func backupAttempt(ctx context.Context, dir string, opts BackupOptions, attempt int) (_ *bundle.Bundle, err error) {
	format := orDefault(opts.Format, bundle.FormatCustom)
	if format != bundle.FormatCustom && format != bundle.FormatPlain {
		return nil, fmt.Errorf("backup: unknown dump format %q (custom or plain)", format)
	}
	recipients, err := bundle.ParseRecipients(opts.Recipients)
	if err != nil {
		return nil, err
	}
	app := opts.Session.tag("backup", attempt)
	env, _, err := opts.Session.env(opts.ConnString, "backup", attempt)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}

	conn, err := opts.Session.connect(ctx, opts.ConnString, "backup", attempt)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := opts.Session.clearLeft(ctx, conn, "backup"); err != nil {
		opts.Session.log().WarnContext(ctx, "could not end the sessions left behind; the backup may wait for their locks", "err", err)
	}
	// A watch notes who blocks the backup's sessions, for the error if a lock wait times out,
	// and stops the attempt if the server loses them.
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	watch := opts.Session.watchAttempt(ctx, opts.ConnString, app, attempt, abort)
	defer func() {
		err = sessionsGone(ctx, err)
		blockers := watch.stop()
		if err != nil && lockTimedOut(err) {
			err = &LockTimeoutError{What: "backup", Timeout: opts.Session.lockTimeout(), Blockers: blockers, Err: err}
		}
	}()

	// The snapshot stays exported while this transaction is open: pg_dump dumps exactly it,
	// and the row counts are read in it.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	m := bundle.Manifest{
		FormatVersion: bundle.ManifestVersion, DumpFormat: format, Compression: "zstd", Encryption: "none",
		DumpFile: bundle.DumpFileName(format, len(recipients) > 0),
		Release:  opts.Release, Revision: opts.Revision, ChartVersion: opts.ChartVersion,
	}
	if len(recipients) > 0 {
		m.Encryption = "age"
	}
	var snapshot string
	var serverNum int
	err = tx.QueryRow(ctx, `SELECT pg_export_snapshot(), current_setting('server_version'),
		current_setting('server_version_num')::int, current_database()`).Scan(&snapshot, &m.ServerVersion, &serverNum, &m.Database)
	if err != nil {
		return nil, fmt.Errorf("export snapshot: %w", err)
	}
	schema, err := schemaState(ctx, conn)
	if err != nil {
		return nil, err
	}
	m.Schema = bundle.ManifestSchema{ChangelogRows: schema.ChangelogRows, LatestChangeID: schema.LatestChangeID, MigrationVersion: schema.MigrationVersion}
	content, err := readContentState(ctx, conn)
	if err != nil {
		return nil, err
	}
	m.Content = &content

	version, major, err := ClientVersion(ctx, opts.Tools.pgDump())
	if err != nil {
		return nil, err
	}
	if major < serverNum/10000 {
		return nil, fmt.Errorf("pg_dump %s is older than the server (PostgreSQL %s): pg_dump must be at least the server's major version", version, m.ServerVersion)
	}
	m.PgDumpVersion = version

	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	b := &bundle.Bundle{Dir: dir, Manifest: m}
	tables, err := listTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	dumped, err := dumpTo(ctx, dumpRequest{
		Path: b.DumpPath(), Format: format, Snapshot: snapshot, Recipients: recipients,
		Env: env, Tools: opts.Tools, PgDumpMajor: major, LockTimeout: opts.Session.lockTimeout(),
		Log: opts.Log, Progress: progress.Options{Interval: opts.ProgressInterval, Attrs: []any{"database", m.Database}},
	})
	if err != nil {
		return nil, fmt.Errorf("dump database %q: %w", m.Database, err)
	}
	// Each table's rows are counted as the dump passes; a table whose data the dump does not
	// hold (a partitioned table's is in its partitions), or every table when the archive's
	// reader was pg_restore, is counted in the snapshot.
	if b.Manifest.RowCounts, err = countTables(ctx, conn, tables, dumped.Rows); err != nil {
		return nil, err
	}
	for _, src := range opts.Parts {
		if src.File == b.Manifest.DumpFile {
			return nil, fmt.Errorf("backup: part %s is named like the dump", src.Role)
		}
		p, err := bundle.WritePart(ctx, dir, src, recipients)
		if err != nil {
			return nil, err
		}
		b.Manifest.Parts = append(b.Manifest.Parts, p)
	}
	b.Manifest.Customizations = opts.Customizations
	b.Manifest.SHA256, b.Manifest.SizeBytes = dumped.SHA256, dumped.Bytes
	b.Manifest.CreatedAt = now().UTC().Truncate(time.Second)
	if err := bundle.WriteManifest(dir, b.Manifest); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	return b, nil
}

// pipeSize is the capacity asked for the pipe pg_dump writes into (where the system allows
// it) and the size of the reads from it. The default 64 KiB has pg_dump and this process take
// turns a dozen times per megabyte; with 1 MiB each side moves large pieces per wake-up,
// which on a busy 2-core machine is measurable CPU.
const pipeSize = 1 << 20

// dumpRequest says what dumpTo dumps, how, and where to.
type dumpRequest struct {
	Path        string          // the dump file, which must not exist
	Format      string          // bundle.FormatCustom or bundle.FormatPlain
	Snapshot    string          // the exported snapshot pg_dump dumps
	Recipients  []age.Recipient // the dump is encrypted to them; none: plaintext
	Env         []string        // pg_dump's environment, which carries the connection
	Tools       Tools
	PgDumpMajor int // pg_dump's major version, which picks the custom archive's reader
	// LockTimeout bounds pg_dump's wait for its table locks (--lock-wait-timeout; pg_dump
	// turns lock_timeout off for its session).
	LockTimeout time.Duration
	// Log, when not nil, receives the progress of pg_dump's output ("backup progress").
	Log      *slog.Logger
	Progress progress.Options
}

// dumpResult describes the dump file dumpTo wrote.
type dumpResult struct {
	SHA256 string // hex of the file's sha256
	Bytes  int64  // the file's size
	// Rows are the rows of each table, by row-count key, as the stream counted them (nil
	// when it could not).
	Rows map[string]int64
}

// dumpTo runs pg_dump into req.Path through the stream and returns the file's sha256 and
// size, and the rows the stream counted.
func dumpTo(parent context.Context, req dumpRequest) (dumpResult, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	f, err := os.OpenFile(req.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return dumpResult{}, err
	}
	defer f.Close()
	hash := sha256.New()
	counter := &countWriter{}
	sink := io.MultiWriter(f, hash, counter)

	var ageW io.WriteCloser
	compressed := sink
	if len(req.Recipients) > 0 {
		if ageW, err = age.Encrypt(sink, req.Recipients...); err != nil {
			return dumpResult{}, fmt.Errorf("start encryption: %w", err)
		}
		compressed = ageW
	}
	// One encoder: on a machine whose cores pg_dump and the server already keep busy, a
	// second one buys no speed and costs CPU (bench/README.md).
	zw, err := zstd.NewWriter(compressed, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return dumpResult{}, err
	}
	defer zw.Close()

	args := []string{"--no-password", "--snapshot=" + req.Snapshot}
	if req.LockTimeout > 0 {
		args = append(args, "--lock-wait-timeout="+strconv.FormatInt(req.LockTimeout.Milliseconds(), 10))
	}
	if req.Format == bundle.FormatCustom {
		args = append(args, "--format=custom", "--compress=0")
	} else {
		args = append(args, "--format=plain", "--clean", "--if-exists", "--no-owner", "--no-acl")
	}
	dump, dumpErr := command(ctx, req.Tools.pgDump(), req.Env, args...)
	stdout, err := dump.StdoutPipe()
	if err != nil {
		return dumpResult{}, err
	}
	if f, ok := stdout.(*os.File); ok {
		growPipe(f)
	}
	dump.WaitDelay = 5 * time.Second
	if err := dump.Start(); err != nil {
		return dumpResult{}, fmt.Errorf("start pg_dump: %w", err)
	}
	// A cancelled dump must end now, even if a child of pg_dump (a wrapper's) holds the pipe.
	stopRead := context.AfterFunc(ctx, func() { stdout.Close() })
	defer stopRead()

	// A custom archive has no trailer: a second reader walks it to its end as it streams by and
	// fails on a truncated one.
	var verify verifier
	out := io.Writer(zw)
	if req.Format == bundle.FormatCustom {
		verify, err = startVerifier(ctx, req.Tools.pgRestore(), req.PgDumpMajor)
		if err != nil {
			dump.Process.Kill()
			dump.Wait()
			return dumpResult{}, err
		}
		out = io.MultiWriter(zw, verify)
	}

	meter := progress.Start(ctx, req.Log, "backup progress", req.Progress)
	defer meter.Stop()
	read := &countReader{r: stdout}
	src := meter.Reader(read)
	var complete bool
	var rows map[string]int64
	var copyErr error
	if req.Format == bundle.FormatPlain {
		// filterPlain writes a line at a time: hand the compressor large pieces.
		w := bufio.NewWriterSize(out, 1<<20)
		var d plainDump
		d, copyErr = filterPlain(w, src, filterOptions{})
		complete, rows = d.complete, d.rows
		if copyErr == nil {
			copyErr = w.Flush()
		}
	} else {
		var head headWriter
		_, copyErr = io.CopyBuffer(io.MultiWriter(out, &head), struct{ io.Reader }{src}, make([]byte, pipeSize))
		complete = bytes.HasPrefix(head.b, []byte("PGDMP"))
	}
	if copyErr != nil {
		cancel() // stop pg_dump, which may be blocked writing
	}
	waitErr := dump.Wait()
	var verifyErr error
	if verify != nil {
		rows, verifyErr = verify.wait()
	}
	switch {
	case parent.Err() != nil:
		return dumpResult{}, fmt.Errorf("%w: stopped: %w", ErrIncomplete, context.Cause(parent))
	case copyErr != nil:
		return dumpResult{}, fmt.Errorf("%w: stream: %w", ErrIncomplete, errors.Join(copyErr, verifyErr))
	case waitErr != nil:
		return dumpResult{}, &attemptError{err: fmt.Errorf("%w: %w", ErrIncomplete, runErr("pg_dump", waitErr, dumpErr)), moved: read.n.Load()}
	case verifyErr != nil:
		return dumpResult{}, fmt.Errorf("%w: the archive does not read to its end: %w", ErrIncomplete, verifyErr)
	case !complete && req.Format == bundle.FormatPlain:
		return dumpResult{}, fmt.Errorf("%w: pg_dump's output ended without its closing trailer %q", ErrIncomplete, strings.TrimSpace(string(dumpTrailer)))
	case !complete:
		return dumpResult{}, fmt.Errorf("%w: pg_dump's output is not a custom archive", ErrIncomplete)
	}
	if err := zw.Close(); err != nil {
		return dumpResult{}, fmt.Errorf("compress: %w", err)
	}
	if ageW != nil {
		if err := ageW.Close(); err != nil {
			return dumpResult{}, fmt.Errorf("encrypt: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return dumpResult{}, err
	}
	if err := f.Close(); err != nil {
		return dumpResult{}, err
	}
	return dumpResult{SHA256: hex.EncodeToString(hash.Sum(nil)), Bytes: counter.n, Rows: rows}, nil
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// headWriter keeps the first bytes written.
type headWriter struct{ b []byte }

func (h *headWriter) Write(p []byte) (int, error) {
	if n := 5 - len(h.b); n > 0 {
		h.b = append(h.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// verifier reads a custom archive written into it to its end; wait reports whether it was
// whole, and the rows of each table's data when the verifier counts them.
type verifier interface {
	io.Writer
	wait() (map[string]int64, error)
}

// startVerifier starts the archive's second reader: the built-in walker of the archive's
// structure for the archive versions it knows, which is cheap, else pg_restore writing the
// whole archive as SQL to nowhere, a second process that costs far more (bench/README.md).
func startVerifier(ctx context.Context, pgRestore string, pgDumpMajor int) (verifier, error) {
	if pgarchive.VersionKnown(pgDumpMajor) {
		return startWalker(), nil
	}
	return startPgRestoreVerifier(ctx, pgRestore)
}

// walker runs pgarchive.Read on what is written into it.
type walker struct {
	*io.PipeWriter
	info pgarchive.Info
	done chan error
}

func startWalker() *walker {
	pr, pw := io.Pipe()
	w := &walker{PipeWriter: pw, done: make(chan error, 1)}
	go func() {
		var err error
		w.info, err = pgarchive.Read(pr)
		pr.CloseWithError(cmp.Or(err, io.ErrClosedPipe)) // a writer past the end fails too
		w.done <- err
	}()
	return w
}

func (w *walker) wait() (map[string]int64, error) {
	w.Close()
	if err := <-w.done; err != nil {
		return nil, err
	}
	if w.info.Rows == nil {
		return nil, nil
	}
	rows := make(map[string]int64, len(w.info.Rows))
	for t, n := range w.info.Rows {
		rows[tableKey(t.Schema, t.Name)] += n
	}
	return rows, nil
}

// pgRestoreVerifier is a pg_restore that reads a custom archive from its stdin to the end.
type pgRestoreVerifier struct {
	io.WriteCloser
	cmd  interface{ Wait() error }
	tail *stderrTail
}

func startPgRestoreVerifier(ctx context.Context, pgRestore string) (*pgRestoreVerifier, error) {
	cmd, tail := command(ctx, pgRestore, os.Environ(), "--format=custom", "--file="+os.DevNull)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pg_restore: %w", err)
	}
	return &pgRestoreVerifier{WriteCloser: stdin, cmd: cmd, tail: tail}, nil
}

func (v *pgRestoreVerifier) wait() (map[string]int64, error) {
	v.Close()
	if err := v.cmd.Wait(); err != nil {
		return nil, runErr("pg_restore", err, v.tail)
	}
	return nil, nil
}

// rowCounts counts the rows of every table outside the system schemas.
func rowCounts(ctx context.Context, conn *pgx.Conn) (map[string]int64, error) {
	tables, err := listTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	return countTables(ctx, conn, tables, nil)
}

// table is a table outside the system schemas: its row-count key and its quoted name.
type table struct{ key, quoted string }

// listTables lists the tables outside the system schemas.
func listTables(ctx context.Context, conn *pgx.Conn) ([]table, error) {
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename, quote_ident(schemaname) || '.' || quote_ident(tablename)
		FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []table
	for rows.Next() {
		var schema, name, quoted string
		if err := rows.Scan(&schema, &name, &quoted); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, table{tableKey(schema, name), quoted})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

// countTables returns the rows of each table: from known when it has the table's key, else
// counted with count(*).
func countTables(ctx context.Context, conn *pgx.Conn, tables []table, known map[string]int64) (map[string]int64, error) {
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		if n, ok := known[t.key]; ok {
			counts[t.key] = n
			continue
		}
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t.quoted).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t.quoted, err)
		}
		counts[t.key] = n
	}
	return counts, nil
}
