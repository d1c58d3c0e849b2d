// Command bench measures identity-upgrade's backup and restore against raw pg_dump and the
// vendor's pipeline on a generated Keycloak-shaped database, and prints ratios measured in the
// same run (the machine is noisy: absolute times mean little, ratios do). `make bench-backup`
// runs it.
//
// It starts its own PostgreSQL server (the test world's), builds the identity-upgrade binary
// and runs it as a subprocess, so that the peak RSS of our process can be read from its rusage.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-backup: %v\n", err)
		os.Exit(1)
	}
}

// The targets the backup and restore are held to (README.md).
const (
	targetRawRatio     = 0.95 // ours' throughput / raw pg_dump's, at least
	targetVendorRatio  = 2.0  // ours' throughput / the vendor pipeline's, at least
	targetRSSMiB       = 64.0 // peak RSS of our process, at most
	targetRestoreRatio = 0.6  // our restore time / the vendor's, at most
	// "The same at both sizes": the large run's peak RSS exceeds the small one's by at most
	// this share or rssSlackMiB, whichever is larger.
	rssSameShare = 0.25
	rssSlackMiB  = 8.0
)

type config struct {
	dbMB, smallMB int
	runs          int
	binary        string
	serve         bool
	moduleDir     string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench-backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defMB := 1024
	if v := getenv("BENCH_DB_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return config{}, fmt.Errorf("BENCH_DB_MB=%q is not a positive number of MiB", v)
		}
		defMB = n
	}
	var c config
	fs.IntVar(&c.dbMB, "db-mb", defMB, "size of the large generated database in MiB (env BENCH_DB_MB)")
	fs.IntVar(&c.smallMB, "small-mb", 100, "size of the small database in MiB, for the RSS comparison (0: skip)")
	fs.IntVar(&c.runs, "runs", 3, "runs of each contestant; the best time counts")
	fs.BoolVar(&c.serve, "serve", false, "generate the -db-mb database, print its URL and wait for an interrupt (for profiling by hand)")
	fs.StringVar(&c.binary, "binary", "", "identity-upgrade binary to measure (default: go build the module)")
	fs.StringVar(&c.moduleDir, "module", "", "module root: built, and holds testdata/sql/keycloak-11.sql (default: found from the working directory)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if c.runs < 1 || c.dbMB < 1 || c.smallMB < 0 {
		return config{}, errors.New("-runs and -db-mb must be positive, -small-mb not negative")
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	moduleDir, err := findModule(cfg.moduleDir)
	if err != nil {
		return err
	}
	logf("starting PostgreSQL")
	srv, err := testworld.StartPostgresServer()
	if err != nil {
		return err
	}
	defer srv.Stop()

	if cfg.serve {
		db, err := srv.CreateDatabase(ctx, "bench")
		if err != nil {
			return err
		}
		size, err := generate(ctx, db, moduleDir, int64(cfg.dbMB)<<20, logf)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%.0f MiB\nDATABASE_URL=%s\nSUPER_URL=%s\n", mib(size), db.URL(), db.SuperURL())
		<-ctx.Done()
		return nil
	}
	bin := cfg.binary
	if bin == "" {
		logf("building identity-upgrade")
		if bin, err = build(ctx, moduleDir, work); err != nil {
			return err
		}
	}
	b := &bench{srv: srv, bin: bin, moduleDir: moduleDir, work: work, runs: cfg.runs, logf: logf}
	var results []*result
	sizes := []int{cfg.dbMB}
	if cfg.smallMB > 0 && cfg.smallMB < cfg.dbMB {
		sizes = []int{cfg.smallMB, cfg.dbMB}
	}
	for i, mb := range sizes {
		r, err := b.measure(ctx, fmt.Sprintf("bench%d", i), mb)
		if err != nil {
			return fmt.Errorf("%d MiB database: %w", mb, err)
		}
		results = append(results, r)
	}
	report(stdout, results)
	return nil
}

// findModule returns dir, or the nearest directory above the working directory with a go.mod.
func findModule(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir = wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above %s; give -module", wd)
		}
	}
}

// build compiles the identity-upgrade binary of the module into dir.
func build(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "identity-upgrade")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w: %s", err, out)
	}
	return bin, nil
}

type bench struct {
	moduleDir string
	srv       *testworld.PostgresServer
	bin       string
	work      string
	runs      int
	logf      func(string, ...any)
}

// Contestants.
const (
	rawDump      = "raw pg_dump -Fp >/dev/null"
	vendorDump   = "vendor pg_dump|grep|gzip"
	refZstd      = "reference pg_dump -Fc|zstd -1"
	oursPlain    = "ours plain+zstd"
	oursCustom   = "ours custom+zstd"
	vendorPsql   = "vendor psql -f backup.sql"
	oursRestoreC = "ours restore (custom)"
	oursRestoreP = "ours restore (plain)"
)

type result struct {
	targetMB int
	dbBytes  int64
	genTime  time.Duration
	best     map[string]time.Duration
	cpu      map[string]float64 // busy CPU-seconds of the whole machine in the best run
	rssKiB   map[string]int64   // peak over the runs
	sizes    map[string]int64   // output size
}

func (r *result) record(name string, m measured) {
	if old, ok := r.best[name]; !ok || m.wall < old {
		r.best[name] = m.wall
		r.cpu[name] = m.cpu
	}
	r.rssKiB[name] = max(r.rssKiB[name], m.rssKiB)
}

func (b *bench) measure(ctx context.Context, name string, mb int) (*result, error) {
	r := &result{targetMB: mb, best: map[string]time.Duration{}, cpu: map[string]float64{}, rssKiB: map[string]int64{}, sizes: map[string]int64{}}
	db, err := b.srv.CreateDatabase(ctx, name)
	if err != nil {
		return nil, err
	}
	defer b.srv.DropDatabase(context.WithoutCancel(ctx), name)
	start := time.Now()
	b.logf("generating a %d MiB Keycloak-shaped database", mb)
	if r.dbBytes, err = generate(ctx, db, b.moduleDir, int64(mb)<<20, b.logf); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	r.genTime = time.Since(start)
	b.logf("generated %.0f MiB in %s", float64(r.dbBytes)/(1<<20), r.genTime.Round(time.Second))

	dir := filepath.Join(b.work, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	env := append(os.Environ(), pgEnv(db)...)
	vendorGz := filepath.Join(dir, "vendor.sql.gz")
	bundles := map[string]string{}
	// Round robin, so that a burst of background load hurts every contestant alike.
	for i := range b.runs {
		b.logf("backup run %d/%d", i+1, b.runs)
		m, err := timed(ctx, env, "pg_dump", "--no-password", "--format=plain", "--file=/dev/null")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rawDump, err)
		}
		r.record(rawDump, m)

		os.Remove(vendorGz)
		m, err = timed(ctx, env, "bash", "-o", "pipefail", "-c", vendorPipeline, "vendor", vendorGz)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vendorDump, err)
		}
		r.record(vendorDump, m)
		r.sizes[vendorDump] = fileSize(vendorGz)

		// What this machine allows a compressing backup: pg_dump into the C zstd at level 1, no
		// checks, no checksum. Informational; it runs when zstd is installed.
		if _, err := exec.LookPath("zstd"); err == nil {
			out := filepath.Join(dir, "reference.zst")
			m, err := timed(ctx, env, "bash", "-o", "pipefail", "-c", referencePipeline, "reference", out)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", refZstd, err)
			}
			r.record(refZstd, m)
			r.sizes[refZstd] = fileSize(out)
			os.Remove(out)
		}

		for _, c := range []struct{ name, format string }{{oursPlain, "plain"}, {oursCustom, "custom"}} {
			store := filepath.Join(dir, "store-"+c.format)
			os.RemoveAll(store)
			m, err := timed(ctx, append(os.Environ(), "DATABASE_URL="+db.URL()), b.bin, "backup",
				"--backup-store=path:"+store, "--backup-format="+c.format, "--allow-plaintext-backup=true",
				"--backup-name=bundle")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			r.record(c.name, m)
			bundles[c.format] = filepath.Join(store, "bundle")
			r.sizes[c.name] = dirSize(bundles[c.format])
		}
	}

	// The vendor restores its uncompressed plain dump with psql into an empty database.
	vendorSQL := filepath.Join(dir, "vendor.sql")
	if err := gunzip(ctx, vendorGz, vendorSQL); err != nil {
		return nil, err
	}
	for i := range b.runs {
		b.logf("restore run %d/%d", i+1, b.runs)
		for _, c := range []struct{ name, from string }{{vendorPsql, ""}, {oursRestoreC, bundles["custom"]}, {oursRestoreP, bundles["plain"]}} {
			target := fmt.Sprintf("%s_restore_%d", name, i)
			dst, err := b.srv.CreateDatabase(ctx, target)
			if err != nil {
				return nil, err
			}
			var m measured
			if c.from == "" {
				m, err = timed(ctx, append(os.Environ(), pgEnv(dst)...), "psql", "--no-psqlrc", "--quiet", "--no-password",
					"--output=/dev/null", "--file="+vendorSQL)
			} else {
				m, err = timed(ctx, append(os.Environ(), "DATABASE_URL="+dst.URL()), b.bin, "restore", "--from="+c.from)
			}
			if err == nil && c.from == "" {
				err = checkVendorRestore(ctx, db, dst)
			}
			if dropErr := b.srv.DropDatabase(context.WithoutCancel(ctx), target); err == nil {
				err = dropErr
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			r.record(c.name, m)
		}
	}
	return r, nil
}

// vendorPipeline is the vendor's backup command; $1 is the output file.
const vendorPipeline = `pg_dump --no-password --clean --no-owner --no-acl | grep -v -E "(DROP SCHEMA public|CREATE SCHEMA public|COMMENT ON SCHEMA public|DROP EXTENSION plpgsql|CREATE EXTENSION IF NOT EXISTS plpgsql|COMMENT ON EXTENSION plpgsql)" | gzip > "$1"`

// referencePipeline is the reference: a custom dump through the C zstd; $1 is the output file.
const referencePipeline = `pg_dump --no-password --format=custom --compress=0 | zstd -1 -q -c > "$1"`

// checkVendorRestore makes sure the vendor's restore really restored something comparable:
// the biggest tables have as many rows as the source.
func checkVendorRestore(ctx context.Context, src, dst testworld.Database) error {
	const q = `SELECT (SELECT count(*) FROM public.event_entity) || ' ' || (SELECT count(*) FROM public.user_attribute)`
	want, err := src.Run(ctx, q)
	if err != nil {
		return err
	}
	got, err := dst.Run(ctx, q)
	if err != nil {
		return err
	}
	if want != got {
		return fmt.Errorf("vendor restore: event_entity/user_attribute rows %s, want %s", strings.TrimSpace(got), strings.TrimSpace(want))
	}
	return nil
}

// pgEnv connects libpq clients to db as its owner, the vendor's database user.
func pgEnv(db testworld.Database) []string {
	return []string{"PGHOST=" + db.Host, "PGPORT=" + strconv.Itoa(db.Port), "PGDATABASE=" + db.Database,
		"PGUSER=" + db.Owner, "PGPASSWORD=" + db.OwnerPassword, "PGSSLMODE=disable"}
}

// measured is one run of a contestant.
type measured struct {
	wall   time.Duration
	rssKiB int64 // peak RSS of the process itself (not of its children)
	// cpu is the busy CPU-seconds of the whole machine during the run: the contestant's
	// processes, the database server's and anything else running. With n CPUs, the run could
	// not have taken less than cpu/n seconds.
	cpu float64
}

// timed runs a command to completion and measures it.
func timed(ctx context.Context, env []string, name string, args ...string) (measured, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	busy0, cpuErr := busyCPU()
	start := time.Now()
	err := cmd.Run()
	m := measured{wall: time.Since(start)}
	busy1, cpuErr1 := busyCPU()
	if err != nil {
		return m, fmt.Errorf("%s: %w: %s", name, err, tailOf(stderr.String()))
	}
	if cpuErr == nil && cpuErr1 == nil {
		m.cpu = busy1 - busy0
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rssKiB = ru.Maxrss
	}
	return m, nil
}

// busyCPU returns the CPU-seconds the machine spent busy since boot: the first line of
// /proc/stat (in USER_HZ, 100 per second on Linux), all but idle and iowait; guest time is
// already in user time.
func busyCPU() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy float64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return busy / 100, nil
}

func tailOf(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

func gunzip(ctx context.Context, src, dst string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "gzip", "-dc", src)
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gunzip the vendor dump: %w", err)
	}
	return out.Close()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func dirSize(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n += fileSize(filepath.Join(dir, e.Name()))
	}
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// cpuBound is the shortest time a contestant's best run could have taken on this machine with
// the same work: its busy CPU-seconds spread evenly over every CPU. A target out of reach of
// this bound needs less work (for the backup, cheaper compression; for the restore, a server
// that does less per row), not better overlap.
func cpuBound(r *result, name string) (float64, bool) {
	cpu := r.cpu[name]
	return cpu / float64(runtime.NumCPU()), cpu > 0
}

// report prints the figures and the verdict on every target.
func report(w io.Writer, results []*result) {
	fmt.Fprintf(w, "\nbench-backup: best of the runs; throughput is MiB of database (pg_database_size) per second;\n"+
		"CPU s: busy CPU-seconds of the whole machine (%d CPUs) during that run, server included\n", runtime.NumCPU())
	for _, r := range results {
		fmt.Fprintf(w, "\n== %d MiB target: database %.0f MiB (generated in %s)\n", r.targetMB, mib(r.dbBytes), r.genTime.Round(time.Second))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "backup\ttime s\tMiB/s\tCPU s\toutput MiB\tpeak RSS MiB\t")
		for _, name := range []string{rawDump, vendorDump, refZstd, oursPlain, oursCustom} {
			d, ok := r.best[name]
			if !ok {
				continue
			}
			rss := "-"
			if name == oursPlain || name == oursCustom {
				rss = fmt.Sprintf("%.1f", float64(r.rssKiB[name])/1024)
			}
			out := "-"
			if n, ok := r.sizes[name]; ok {
				out = fmt.Sprintf("%.1f", mib(n))
			}
			fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.2f\t%s\t%s\t\n", name, d.Seconds(), mib(r.dbBytes)/d.Seconds(), r.cpu[name], out, rss)
		}
		fmt.Fprintln(tw, "restore\ttime s\tMiB/s\tCPU s\t\tpeak RSS MiB\t")
		for _, name := range []string{vendorPsql, oursRestoreC, oursRestoreP} {
			d := r.best[name]
			fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.2f\t\t%.1f\t\n", name, d.Seconds(), mib(r.dbBytes)/d.Seconds(), r.cpu[name], float64(r.rssKiB[name])/1024)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\ntargets\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "size\tmeasure\tvalue\ttarget\tverdict")
	for _, r := range results {
		size := fmt.Sprintf("%d MiB", r.targetMB)
		for _, ours := range []string{oursPlain, oursCustom} {
			raw := r.best[rawDump].Seconds() / r.best[ours].Seconds()
			fmt.Fprintf(tw, "%s\t%s / raw pg_dump throughput\t%.2f\t>= %.2f\t%s\n", size, ours, raw, targetRawRatio, verdict(raw >= targetRawRatio))
			if bound, ok := cpuBound(r, ours); ok {
				fmt.Fprintf(tw, "%s\t%s / raw pg_dump, the most its CPU s allow\t%.2f\t(bound)\t-\n", size, ours, r.best[rawDump].Seconds()/bound)
			}
			vendor := r.best[vendorDump].Seconds() / r.best[ours].Seconds()
			fmt.Fprintf(tw, "%s\t%s / vendor throughput\t%.2f\t>= %.2f\t%s\n", size, ours, vendor, targetVendorRatio, verdict(vendor >= targetVendorRatio))
			rss := float64(r.rssKiB[ours]) / 1024
			fmt.Fprintf(tw, "%s\t%s peak RSS MiB\t%.1f\t<= %.0f\t%s\n", size, ours, rss, targetRSSMiB, verdict(rss <= targetRSSMiB))
		}
		if ref, ok := r.best[refZstd]; ok {
			raw := r.best[rawDump].Seconds() / ref.Seconds()
			fmt.Fprintf(tw, "%s\t%s / raw pg_dump throughput\t%.2f\t(reference)\t-\n", size, refZstd, raw)
		}
		for _, ours := range []string{oursRestoreC, oursRestoreP} {
			ratio := r.best[ours].Seconds() / r.best[vendorPsql].Seconds()
			fmt.Fprintf(tw, "%s\t%s / vendor psql time\t%.2f\t<= %.2f\t%s\n", size, ours, ratio, targetRestoreRatio, verdict(ratio <= targetRestoreRatio))
			if bound, ok := cpuBound(r, ours); ok {
				fmt.Fprintf(tw, "%s\t%s / vendor psql, the least its CPU s allow\t%.2f\t(bound)\t-\n", size, ours, bound/r.best[vendorPsql].Seconds())
			}
		}
	}
	if len(results) == 2 {
		small, large := results[0], results[1]
		for _, ours := range []string{oursPlain, oursCustom} {
			s, l := float64(small.rssKiB[ours])/1024, float64(large.rssKiB[ours])/1024
			limit := s + max(rssSlackMiB, s*rssSameShare)
			fmt.Fprintf(tw, "%d→%d MiB\t%s peak RSS growth MiB\t%+.1f\t<= +%.1f\t%s\n", small.targetMB, large.targetMB, ours, l-s, limit-s, verdict(l <= limit))
		}
	}
	tw.Flush()
}
