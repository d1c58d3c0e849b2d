package pgarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The tests read archives of the real pg_dump of the test world (PostgreSQL 15, format 1.14),
// written to a pipe (no data offsets) and to a file (offsets rewritten into the TOC). To cover
// the formats of other pg_dump versions they take those archives apart with a reading of the
// format of their own (tArchive, independent of pgarchive.go), check that it rebuilds them byte
// for byte, and rebuild them as 1.12, 1.13, 1.15 and 1.16 archives.

// archiveFixtureDB gives a database with the Keycloak 11 fixture, two empty tables and two
// large objects (one of several chunks), everything owned by the owner role.
func archiveFixtureDB(t testing.TB) testworld.Database {
	t.Helper()
	db := testworld.Postgres(t)
	db.ExecFileAsOwner(t, filepath.Join("..", "..", "testdata", "sql", "keycloak-11.sql"))
	db.Exec(t, "SET ROLE "+db.Owner+`;
		CREATE TABLE empty_one (id int);
		CREATE TABLE empty_two (id int PRIMARY KEY, note text);
		SELECT lo_from_bytea(0, 'hello');
		SELECT lo_from_bytea(0, decode(repeat('0123456789abcdef', 5000), 'hex'));`)
	return db
}

// smallArchiveDB gives a database small enough to flip every byte of its archive's header and
// TOC: two tables (one empty) and a large object.
func smallArchiveDB(t testing.TB) testworld.Database {
	t.Helper()
	db := testworld.Postgres(t)
	db.Exec(t, "SET ROLE "+db.Owner+`;
		CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 20) g;
		CREATE TABLE nothing (id int);
		SELECT lo_from_bytea(0, 'hello');`)
	return db
}

// pgDump runs the test world's pg_dump --format=custom with --compress=compress, to a pipe or
// (toFile) to a file, and returns the archive.
func pgDump(t testing.TB, db testworld.Database, toFile bool, compress string) []byte {
	t.Helper()
	args := []string{"--format=custom", "--compress=" + compress, "--no-password", "--dbname=" + db.URL()}
	path := filepath.Join(t.TempDir(), "archive.dump")
	if toFile {
		args = append(args, "--file="+path)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(db.BinDir, "pg_dump"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr // a pipe: os/exec copies from it
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, stderr.Bytes())
	}
	if !toFile {
		return stdout.Bytes()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pgRestoreList counts the TOC entries pg_restore --list --verbose shows (the verbose list has
// every entry; the plain one leaves out ENCODING, STDSTRINGS, SEARCHPATH and DATABASE) and the
// ones with a data block (TABLE DATA, BLOBS).
func pgRestoreList(t testing.TB, db testworld.Database, archive []byte) (entries, data int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "list.dump")
	if err := os.WriteFile(path, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(db.BinDir, "pg_restore"), "--list", "--verbose", path).Output()
	if err != nil {
		t.Fatalf("pg_restore --list: %v", err)
	}
	header := -1
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(line, ";     TOC Entries: "); ok {
			header, _ = strconv.Atoi(n)
		}
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		entries++
		// "246; 0 16548 TABLE DATA public admin_event_entity keycloak"
		if strings.Contains(line, " TABLE DATA ") || strings.Contains(line, " BLOBS ") {
			data++
		}
	}
	if header != entries {
		t.Fatalf("pg_restore --list: header says %d TOC entries, lists %d", header, entries)
	}
	return entries, data
}

func mustRead(t testing.TB, b []byte) Info {
	t.Helper()
	info, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return info
}

func TestRead(t *testing.T) {
	t.Parallel()
	db := archiveFixtureDB(t)
	empty := testworld.Postgres(t)
	cases := []struct {
		name    string
		db      testworld.Database
		toFile  bool
		hasData bool
	}{
		{"keycloak/pipe", db, false, true},
		{"keycloak/file", db, true, true},
		{"empty-database/pipe", empty, false, false},
		{"empty-database/file", empty, true, false},
	}
	var keycloakInfo []Info
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			archive := pgDump(t, c.db, c.toFile, "0")
			info := mustRead(t, archive)
			entries, data := pgRestoreList(t, c.db, archive)
			t.Logf("%d bytes: %+v", len(archive), info)
			if info.Entries != entries || info.DataBlocks != data {
				t.Errorf("Read: %d entries, %d data blocks; pg_restore --list: %d entries, %d data blocks",
					info.Entries, info.DataBlocks, entries, data)
			}
			if !strings.HasPrefix(info.Version, "1.14.") { // pg_dump 15
				t.Errorf("version %q", info.Version)
			}
			if c.hasData && (info.DataBlocks < 30 || info.DataBytes < 100_000 || info.DataBytes >= int64(len(archive))) {
				t.Errorf("implausible: %+v of a %d-byte archive", info, len(archive))
			}
			if !c.hasData && (info.DataBlocks != 0 || info.DataBytes != 0 || len(info.Rows) != 0) {
				t.Errorf("an empty database's archive has data: %+v", info)
			}
			// Its rows are the database's, table by table.
			if want := tableRows(t, c.db); !maps.Equal(info.Rows, want) && (len(want) > 0 || len(info.Rows) > 0) {
				t.Errorf("rows %v, want %v", info.Rows, want)
			}

			// The tests' own reading of the format agrees, down to the byte.
			m := parseTestArchive(t, archive)
			if got := m.offsetsSet(); got != (c.toFile && c.hasData) {
				t.Errorf("data offsets in the TOC: %t, want %t (file %t)", got, c.toFile && c.hasData, c.toFile)
			}
			if rebuilt, _ := m.build(); !bytes.Equal(rebuilt, archive) {
				t.Errorf("the tests' model of the archive does not rebuild it (%d bytes, want %d)", len(rebuilt), len(archive))
			}
			if n, d := len(m.entries), len(m.blocks); n != info.Entries || d != info.DataBlocks || m.dataBytes() != info.DataBytes {
				t.Errorf("model: %d entries, %d blocks, %d bytes; Read %+v", n, d, m.dataBytes(), info)
			}

			// However the bytes arrive.
			readers := map[string]func() io.Reader{
				"one byte at a time": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(archive)) },
				"half reads":         func() io.Reader { return iotest.HalfReader(bytes.NewReader(archive)) },
				"EOF with data":      func() io.Reader { return iotest.DataErrReader(bytes.NewReader(archive)) },
				"pipe":               func() io.Reader { return pipeIn(archive, 4096) },
			}
			for name, r := range readers {
				if got, err := Read(r()); err != nil || !reflect.DeepEqual(got, info) {
					t.Errorf("%s: %+v, %v; want %+v", name, got, err, info)
				}
			}
			// A read error is returned as such.
			boom := errors.New("boom")
			r := io.MultiReader(bytes.NewReader(archive[:len(archive)/2]), iotest.ErrReader(boom))
			if _, err := Read(r); !errors.Is(err, boom) {
				t.Errorf("read error: got %v", err)
			}
			if c.hasData {
				keycloakInfo = append(keycloakInfo, info)
			}
		})
	}
	if len(keycloakInfo) == 2 && !reflect.DeepEqual(keycloakInfo[0], keycloakInfo[1]) {
		t.Errorf("the pipe and file archives of one database differ: %+v, %+v", keycloakInfo[0], keycloakInfo[1])
	}
}

// pipeIn streams b through an io.Pipe in writes of n bytes.
func pipeIn(b []byte, n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for len(b) > 0 {
			k := min(n, len(b))
			if _, err := pw.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
		pw.Close()
	}()
	return pr
}

// TestReadVersions rebuilds real archives in the format of other pg_dump versions.
func TestReadVersions(t *testing.T) {
	t.Parallel()
	db := archiveFixtureDB(t)
	for _, toFile := range []bool{false, true} {
		archive := pgDump(t, db, toFile, "0")
		want := mustRead(t, archive)
		m := parseTestArchive(t, archive)
		for _, vmin := range []byte{12, 13, 14, 15, 16} {
			t.Run(fmt.Sprintf("1.%d/file=%t", vmin, toFile), func(t *testing.T) {
				v := m.as(vmin)
				b, _ := v.build()
				info := mustRead(t, b)
				want := want
				want.Version = fmt.Sprintf("1.%d.0", vmin)
				if !reflect.DeepEqual(info, want) {
					t.Errorf("got %+v, want %+v", info, want)
				}
				if vmin == 16 {
					// The relkind is read: a bad one is refused.
					bad := v.clone()
					bad.entries[len(bad.entries)/2].relkind = 1000
					if _, err := Read(bytes.NewReader(mustBuild(bad))); !errors.Is(err, ErrMalformed) {
						t.Errorf("relkind 1000: %v", err)
					}
				}
			})
		}
		if toFile {
			t.Run("offsets from a non-zero file position", func(t *testing.T) {
				// pg_dump -Fc >> file: the offsets count from the start of the file.
				v := m.clone()
				v.offsetBase = 12345
				if got := mustRead(t, mustBuild(v)); !reflect.DeepEqual(got, want) {
					t.Errorf("got %+v, want %+v", got, want)
				}
			})
			t.Run("one offset wrong", func(t *testing.T) {
				b, lay := m.build()
				b[lay.offsets[len(lay.offsets)-1]]++ // the last data block's offset
				if _, err := Read(bytes.NewReader(b)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "offset") {
					t.Errorf("got %v", err)
				}
			})
		}
	}

	t.Run("unknown versions", func(t *testing.T) {
		archive := pgDump(t, db, false, "0")
		for _, v := range [][2]byte{{1, 11}, {1, 17}, {1, 99}, {2, 0}, {0, 9}} {
			b := bytes.Clone(archive)
			b[5], b[6] = v[0], v[1]
			if _, err := Read(bytes.NewReader(b)); !errors.Is(err, ErrUnsupported) {
				t.Errorf("version %d.%d: %v", v[0], v[1], err)
			}
		}
	})
	t.Run("compressed, as pg_dump 12 to 18 say it", func(t *testing.T) {
		m := parseTestArchive(t, pgDump(t, db, false, "0"))
		for _, c := range []struct {
			vmin        byte
			compression int
		}{{14, -1}, {14, 1}, {14, 9}, {15, 1}, {15, 2}, {15, 3}, {16, 3}, {16, 200}} {
			v := m.as(c.vmin)
			v.compression = c.compression
			if _, err := Read(bytes.NewReader(mustBuild(v))); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "compressed") {
				t.Errorf("1.%d compression %d: %v", c.vmin, c.compression, err)
			}
		}
	})
}

func TestReadCompressed(t *testing.T) {
	t.Parallel()
	db := smallArchiveDB(t)
	for _, toFile := range []bool{false, true} {
		_, err := Read(bytes.NewReader(pgDump(t, db, toFile, "1")))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "compressed") {
			t.Errorf("pg_dump --compress=1 (file %t): got %v, want ErrUnsupported about compression", toFile, err)
		}
	}
}

func TestVersionKnown(t *testing.T) {
	for major, want := range map[int]bool{9: false, 10: true, 12: true, 15: true, 16: true, 17: true, 18: true, 19: false} {
		if got := VersionKnown(major); !reflect.DeepEqual(got, want) {
			t.Errorf("VersionKnown(%d) = %t", major, got)
		}
	}
}

// TestReadTruncated cuts real archives everywhere it matters: every cut must fail as
// a truncation.
func TestReadTruncated(t *testing.T) {
	t.Parallel()
	db := archiveFixtureDB(t)
	for _, toFile := range []bool{false, true} {
		t.Run(fmt.Sprintf("file=%t", toFile), func(t *testing.T) {
			archive := pgDump(t, db, toFile, "0")
			_, lay := parseTestArchive(t, archive).build()
			cuts := map[int]bool{}
			for i := range 200 {
				cuts[i*len(archive)/200] = true
			}
			for i := 1; i <= 16; i++ {
				cuts[len(archive)-i] = true
			}
			for i := range 64 {
				cuts[i] = true
			}
			for _, p := range []int{lay.tocStart - 1, lay.tocStart, lay.tocStart + 1, lay.tocEnd - 1, lay.tocEnd, lay.tocEnd + 1} {
				cuts[p] = true
			}
			for _, p := range lay.blockStarts {
				for d := -1; d <= 6; d++ {
					cuts[p+d] = true
				}
			}
			for i, p := range lay.chunkStarts {
				if i%200 == 0 {
					cuts[p], cuts[p+1], cuts[p+5] = true, true, true
				}
			}
			blockCuts := 0
			for n := range cuts {
				if n < 0 || n >= len(archive) {
					continue
				}
				info, err := Read(bytes.NewReader(archive[:n]))
				if err == nil {
					t.Fatalf("cut at %d of %d: no error (%+v)", n, len(archive), info)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cut at %d of %d: %v, want a truncation", n, len(archive), err)
				}
				if lay.isBlockStart(n) {
					blockCuts++
					if !strings.Contains(err.Error(), "missing") {
						t.Errorf("cut at block start %d: %v, want the missing blocks named", n, err)
					}
				}
			}
			t.Logf("%d cuts, %d at a data block boundary", len(cuts), blockCuts)
			if blockCuts < 30 {
				t.Errorf("only %d cuts at block boundaries", blockCuts)
			}
			_, err := Read(bytes.NewReader(archive[:lay.blockStarts[len(lay.blockStarts)-1]]))
			if err == nil || !strings.Contains(err.Error(), "1 missing") {
				t.Errorf("without the last block: %v", err)
			}
		})
	}
}

// TestReadCorrupt flips bytes of a real archive: every byte of its header and TOC, and
// of every block and chunk header. A flip of a byte that carries structure must fail; none may
// panic or hang.
func TestReadCorrupt(t *testing.T) {
	t.Parallel()
	db := smallArchiveDB(t)
	for _, toFile := range []bool{false, true} {
		t.Run(fmt.Sprintf("file=%t", toFile), func(t *testing.T) {
			archive := pgDump(t, db, toFile, "0")
			m := parseTestArchive(t, archive)
			if toFile != m.offsetsSet() {
				t.Fatalf("offsets set %t", m.offsetsSet())
			}
			want := mustRead(t, archive)
			_, lay := m.build()
			positions := map[int]bool{}
			for p := range lay.tocEnd {
				positions[p] = true
			}
			for p := range lay.must {
				positions[p] = true
			}
			var done atomic.Int64
			finished := make(chan struct{})
			var failed, silent, mustCount int
			go func() {
				defer close(finished)
				for p := range positions {
					b := bytes.Clone(archive)
					b[p] ^= 0xFF
					info, err := Read(bytes.NewReader(b))
					done.Add(1)
					switch {
					case err != nil:
						failed++
					case lay.must[p]:
						t.Errorf("flip at %d (%s): no error: %+v", p, lay.what(p), info)
					default:
						silent++
						info.Version = want.Version // a flip of vrev is a valid revision
						// A flip in a table's name or its entry's type renames or uncounts its
						// rows; the structure is what must read the same.
						info.Rows = want.Rows
						if !reflect.DeepEqual(info, want) {
							t.Errorf("flip at %d (%s): read as %+v, want an error or %+v", p, lay.what(p), info, want)
						}
					}
					if lay.must[p] {
						mustCount++
					}
				}
			}()
			select {
			case <-finished:
			case <-time.After(5 * time.Minute):
				t.Fatalf("hung after %d of %d flips", done.Load(), len(positions))
			}
			t.Logf("%d flips (%d must fail): %d failed, %d read as the original (flips in text)", len(positions), mustCount, failed, silent)
			if mustCount < 500 {
				t.Errorf("only %d structural positions", mustCount)
			}
		})
	}

	t.Run("restructured", func(t *testing.T) {
		archive := pgDump(t, db, false, "0")
		m := parseTestArchive(t, archive)
		if len(m.blocks) < 3 {
			t.Fatalf("%d blocks", len(m.blocks))
		}
		cases := map[string]func(*tArchive){
			"blocks swapped": func(a *tArchive) { a.blocks[0], a.blocks[1] = a.blocks[1], a.blocks[0] },
			"block dropped":  func(a *tArchive) { a.blocks = append(a.blocks[:1], a.blocks[2:]...) },
			"block twice":    func(a *tArchive) { a.blocks = append(a.blocks, a.blocks[len(a.blocks)-1]) },
			"block for an entry without data": func(a *tArchive) {
				for _, e := range a.entries {
					if e.hadDumper == 0 {
						a.blocks = append(a.blocks, tBlock{typ: blkData, id: e.id})
						return
					}
				}
			},
			"table data as a large-object block": func(a *tArchive) { a.blocks[0].typ = blkBlobs },
			"large objects as a data block": func(a *tArchive) {
				for i := range a.blocks {
					if a.blocks[i].typ == blkBlobs {
						a.blocks[i].typ = blkData
					}
				}
			},
			"data dumper without a data offset": func(a *tArchive) {
				for i := range a.entries {
					if a.entries[i].hadDumper == 1 {
						a.entries[i].offFlag = offNoData
						return
					}
				}
			},
			"data offset without a data dumper": func(a *tArchive) { a.entries[0].offFlag = offPosNotSet },
			"duplicate dump id": func(a *tArchive) {
				a.entries[1].id = a.entries[0].id
			},
			"negative chunk length": func(a *tArchive) { a.blocks[0].rawChunkLen = -5 },
		}
		for name, change := range cases {
			v := m.clone()
			change(v)
			if _, err := Read(bytes.NewReader(mustBuild(v))); err == nil {
				t.Errorf("%s: no error", name)
			} else {
				t.Logf("%s: %v", name, err)
			}
		}
		for name, tail := range map[string][]byte{"a zero byte": {0}, "a block type": {blkData}, "garbage": []byte("garbage")} {
			_, err := Read(bytes.NewReader(append(bytes.Clone(archive), tail...)))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "after the last data block") {
				t.Errorf("followed by %s: %v", name, err)
			}
		}
		for name, b := range map[string][]byte{
			"empty":      nil,
			"plain SQL":  []byte("--\n-- PostgreSQL database dump\n--\n"),
			"tar":        make([]byte, 1024),
			"wrong kind": append([]byte("PGDMP\x01\x0e\x00\x04\x08\x03"), archive[11:]...), // format 3: tar
		} {
			if _, err := Read(bytes.NewReader(b)); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		// A huge string length is refused before anything is allocated for it.
		b, lay := m.build()
		p := lay.strLens[0] // the first string of the header
		copy(b[p:], []byte{0, 0xff, 0xff, 0xff, 0x7f})
		if _, err := Read(bytes.NewReader(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("string of 2 GiB: %v", err)
		}
	})
}

func FuzzRead(f *testing.F) {
	db := smallArchiveDB(f)
	archive := pgDump(f, db, false, "0")
	f.Add(archive)
	f.Add(pgDump(f, db, true, "0"))
	m := parseTestArchive(f, archive)
	f.Add(mustBuild(m.as(16)))
	f.Add(mustBuild(m.as(15)))
	f.Add(archive[:len(archive)/2])
	allocated := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}} // unlike ReadMemStats, no stop-the-world
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		before := allocated()
		info, err := Read(bytes.NewReader(b))
		// The 1 MiB read buffer (the first time) and what the TOC entries keep.
		if alloc := allocated() - before; alloc > 4<<20+uint64(16*len(b)) {
			t.Errorf("%d bytes allocated reading %d bytes", alloc, len(b))
		}
		if err == nil && (info.DataBlocks > info.Entries || info.DataBytes > int64(len(b))) {
			t.Errorf("read as %+v from %d bytes", info, len(b))
		}
	})
}

// TestThroughput dumps a table of a million rows (about 100 MB, a chunk per row) and
// logs how fast Read reads it, next to what pg_restore --file=/dev/null costs.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("dumps 100 MB")
	}
	t.Parallel()
	db := testworld.Postgres(t)
	db.Exec(t, "SET ROLE "+db.Owner+`;
		CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, timestamptz '2024-01-01' + g * interval '1 second' AS at
		FROM generate_series(1, 1000000) g;`)
	archive := pgDump(t, db, false, "0")
	mb := float64(len(archive)) / 1e6

	best := time.Duration(1 << 62)
	var info Info
	for range 3 {
		start := time.Now()
		info = mustRead(t, archive)
		best = min(best, time.Since(start))
	}
	start := time.Now()
	if got, err := Read(pipeIn(archive, 256<<10)); err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("through a pipe: %+v, %v", got, err)
	}
	piped := time.Since(start)
	if info.DataBlocks != 1 || info.DataBytes < 90e6 {
		t.Errorf("implausible: %+v", info)
	}

	restore := exec.CommandContext(t.Context(), filepath.Join(db.BinDir, "pg_restore"), "--format=custom", "--file="+os.DevNull)
	restore.Stdin = bytes.NewReader(archive)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v: %s", err, out)
	}
	cpu := restore.ProcessState.UserTime() + restore.ProcessState.SystemTime()
	t.Logf("%.1f MB archive, 1,000,000 rows (a chunk each), %+v", mb, info)
	t.Logf("Read from memory: %v, %.0f MB/s; through an io.Pipe in 256 KiB writes: %v, %.0f MB/s (race detector: %t)",
		best, mb/best.Seconds(), piped, mb/piped.Seconds(), raceEnabled())
	t.Logf("pg_restore --file=/dev/null: %v CPU, %.0f MB/s", cpu, mb/cpu.Seconds())
}

// BenchmarkRead reads a synthetic archive of one table: a million 100-byte chunks, as
// pg_dump 15 writes a row each.
func BenchmarkRead(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	chunks := make([][]byte, 1_000_000)
	for i := range chunks {
		chunks[i] = payload
	}
	a := &tArchive{
		vmaj: 1, vmin: 14, intSize: 4, offSize: 8, tm: [7]int{0, 0, 12, 1, 0, 124, 0},
		dbname: tStr{s: "bench"}, serverVersion: tStr{s: "15.0"}, dumpVersion: tStr{s: "15.0"},
		entries: []tEntry{
			testEntry(1, false, "TABLE", "t"),
			testEntry(2, true, "TABLE DATA", "t", "1"),
		},
		blocks: []tBlock{{typ: blkData, id: 2, chunks: chunks}},
	}
	archive := mustBuild(a)
	b.SetBytes(int64(len(archive)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(bytes.NewReader(archive)); err != nil {
			b.Fatal(err)
		}
	}
}

func testEntry(id int, hadDumper bool, desc, tag string, deps ...string) tEntry {
	e := tEntry{
		id: id, tableoid: tStr{s: "1259"}, oid: tStr{s: strconv.Itoa(16000 + id)},
		tag: tStr{s: tag}, desc: tStr{s: desc}, section: 2,
		defn: tStr{s: "CREATE TABLE t (x text);"}, drop: tStr{s: "DROP TABLE t;"}, copy: tStr{s: ""},
		namespace: tStr{s: "public"}, tablespace: tStr{s: ""}, tableam: tStr{s: "heap"},
		owner: tStr{s: "keycloak"}, withOids: tStr{s: "false"}, deps: deps, offFlag: offNoData,
	}
	if hadDumper {
		e.hadDumper, e.offFlag, e.section = 1, offPosNotSet, 3
		e.defn, e.drop, e.copy = tStr{s: ""}, tStr{s: ""}, tStr{s: "COPY public.t (x) FROM stdin;\n"}
	}
	return e
}

// raceEnabled reports whether the test binary was built with -race, for the log.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// --- The tests' own reading of the custom format ---

type tStr struct {
	s    string
	null bool
}

type tArchive struct {
	vmaj, vmin, vrev byte
	intSize, offSize byte
	compression      int // the level int (before 1.15) or the algorithm byte
	tm               [7]int
	dbname           tStr
	serverVersion    tStr
	dumpVersion      tStr
	entries          []tEntry
	blocks           []tBlock
	offsetBase       int64 // added to the data offsets build writes
}

type tEntry struct {
	id, hadDumper                                    int
	tableoid, oid, tag, desc                         tStr
	section                                          int
	defn, drop, copy, namespace, tablespace, tableam tStr
	relkind                                          int
	owner, withOids                                  tStr
	deps                                             []string
	offFlag                                          byte
	offset                                           int64
}

type tBlock struct {
	typ         byte
	id          int
	chunks      [][]byte // BLK_DATA
	los         []tLO    // BLK_BLOBS
	rawChunkLen int      // if not 0, a chunk of this length (no payload) comes first
}

type tLO struct {
	oid    int
	chunks [][]byte
}

func (a *tArchive) version() int { return int(a.vmaj)<<16 | int(a.vmin)<<8 | int(a.vrev) }

func (a *tArchive) offsetsSet() bool {
	for _, e := range a.entries {
		if e.offFlag == offPosSet {
			return true
		}
	}
	return false
}

func (a *tArchive) dataBytes() int64 {
	var n int64
	for _, b := range a.blocks {
		for _, c := range b.chunks {
			n += int64(len(c))
		}
		for _, lo := range b.los {
			for _, c := range lo.chunks {
				n += int64(len(c))
			}
		}
	}
	return n
}

func (a *tArchive) clone() *tArchive {
	c := *a
	c.entries = append([]tEntry(nil), a.entries...)
	c.blocks = append([]tBlock(nil), a.blocks...)
	return &c
}

// as returns the archive in format version 1.vmin, as that pg_dump would have written it.
func (a *tArchive) as(vmin byte) *tArchive {
	c := a.clone()
	c.vmin, c.vrev = vmin, 0
	c.compression = 0
	for i := range c.entries {
		e := &c.entries[i]
		e.relkind = 0
		if vmin >= 16 && e.desc.s == "TABLE" {
			e.relkind = 'r'
		}
		if vmin < 14 {
			e.tableam = tStr{}
		}
	}
	return c
}

type tReader struct {
	b                []byte
	p                int
	intSize, offSize int
}

var errTShort = errors.New("short")

func (r *tReader) next(n int) []byte {
	if n < 0 || r.p+n > len(r.b) {
		panic(errTShort)
	}
	s := r.b[r.p : r.p+n]
	r.p += n
	return s
}

func (r *tReader) byte() byte { return r.next(1)[0] }

func (r *tReader) int() int {
	s := r.next(1 + r.intSize)
	v := 0
	for i := r.intSize; i >= 1; i-- {
		v = v<<8 | int(s[i])
	}
	if s[0] != 0 {
		v = -v
	}
	return v
}

func (r *tReader) str() tStr {
	n := r.int()
	if n < 0 {
		return tStr{null: true}
	}
	return tStr{s: string(r.next(n))}
}

func (r *tReader) chunks() [][]byte {
	var cs [][]byte
	for {
		n := r.int()
		if n == 0 {
			return cs
		}
		cs = append(cs, r.next(n))
	}
}

// parseTestArchive takes an uncompressed custom archive of format 1.12 to 1.16 apart.
func parseTestArchive(t testing.TB, b []byte) (a *tArchive) {
	t.Helper()
	defer func() {
		if err := recover(); err != nil {
			t.Fatalf("the tests' reading of the archive: %v", err)
		}
	}()
	r := &tReader{b: b}
	if string(r.next(5)) != "PGDMP" {
		panic("magic")
	}
	a = &tArchive{vmaj: r.byte(), vmin: r.byte(), vrev: r.byte(), intSize: r.byte(), offSize: r.byte()}
	r.intSize, r.offSize = int(a.intSize), int(a.offSize)
	if r.byte() != formatCustom {
		panic("format")
	}
	if a.version() >= version1_15 {
		a.compression = int(r.byte())
	} else {
		a.compression = r.int()
	}
	for i := range a.tm {
		a.tm[i] = r.int()
	}
	a.dbname, a.serverVersion, a.dumpVersion = r.str(), r.str(), r.str()
	for range r.int() {
		var e tEntry
		e.id, e.hadDumper = r.int(), r.int()
		e.tableoid, e.oid, e.tag, e.desc = r.str(), r.str(), r.str(), r.str()
		e.section = r.int()
		e.defn, e.drop, e.copy, e.namespace, e.tablespace = r.str(), r.str(), r.str(), r.str(), r.str()
		if a.version() >= version1_14 {
			e.tableam = r.str()
		}
		if a.version() >= version1_16 {
			e.relkind = r.int()
		}
		e.owner, e.withOids = r.str(), r.str()
		for d := r.str(); !d.null; d = r.str() {
			e.deps = append(e.deps, d.s)
		}
		e.offFlag = r.byte()
		for i, c := range r.next(r.offSize) {
			e.offset |= int64(c) << (8 * i)
		}
		a.entries = append(a.entries, e)
	}
	for r.p < len(b) {
		blk := tBlock{typ: r.byte(), id: r.int()}
		switch blk.typ {
		case blkData:
			blk.chunks = r.chunks()
		case blkBlobs:
			for oid := r.int(); oid != 0; oid = r.int() {
				blk.los = append(blk.los, tLO{oid: oid, chunks: r.chunks()})
			}
		default:
			panic(fmt.Sprintf("block type %d", blk.typ))
		}
		a.blocks = append(a.blocks, blk)
	}
	return a
}

// tLayout is where build put things.
type tLayout struct {
	tocStart, tocEnd int
	blockStarts      []int
	chunkStarts      []int
	strLens          []int        // string length ints
	offsets          []int        // data offsets of the entries with their offset set
	must             map[int]bool // bytes whose flip must make Read fail
	kinds            map[int]string
}

func (l *tLayout) isBlockStart(p int) bool {
	for _, s := range l.blockStarts {
		if s == p {
			return true
		}
	}
	return false
}

func (l *tLayout) what(p int) string {
	for q := p; q >= 0 && q > p-64; q-- {
		if k, ok := l.kinds[q]; ok {
			return fmt.Sprintf("%s+%d", k, p-q)
		}
	}
	return "?"
}

type tWriter struct {
	b       []byte
	intSize int
	lay     *tLayout
}

func (w *tWriter) mark(kind string) {
	if w.lay.kinds != nil {
		w.lay.kinds[len(w.b)] = kind
	}
}

func (w *tWriter) mustBytes(n int) {
	for i := range n {
		if w.lay.must == nil {
			return
		}
		w.lay.must[len(w.b)-1-i] = true
	}
}

func (w *tWriter) byte(c byte, must bool, kind string) {
	w.mark(kind)
	w.b = append(w.b, c)
	if must {
		w.mustBytes(1)
	}
}

// int writes an int; flipping its sign byte, or its top byte while the value is small, must
// fail; flipping any byte of a must int too.
func (w *tWriter) int(v int, must bool, kind string) {
	w.mark(kind)
	start := len(w.b)
	sign, mag := byte(0), v
	if v < 0 {
		sign, mag = 1, -v
	}
	w.b = append(w.b, sign)
	for range w.intSize {
		w.b = append(w.b, byte(mag))
		mag >>= 8
	}
	if w.lay.must == nil {
		return
	}
	w.lay.must[start] = true
	if abs(v) < 1<<24 {
		w.lay.must[start+w.intSize] = true
	}
	if must {
		w.mustBytes(1 + w.intSize)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// str writes a string; mustText: flipping a byte of its text must fail too.
func (w *tWriter) str(s tStr, mustText bool, kind string) {
	w.lay.strLens = append(w.lay.strLens, len(w.b))
	if s.null {
		w.int(-1, false, kind+" length")
		return
	}
	w.int(len(s.s), false, kind+" length")
	w.mark(kind)
	w.b = append(w.b, s.s...)
	if mustText {
		w.mustBytes(len(s.s))
	}
}

func (w *tWriter) chunks(cs [][]byte) {
	for _, c := range cs {
		if w.lay.must != nil {
			w.lay.chunkStarts = append(w.lay.chunkStarts, len(w.b))
		}
		w.int(len(c), false, "chunk length")
		w.b = append(w.b, c...)
	}
	w.int(0, false, "chunk terminator")
}

// mustBuild is build without the layout.
func mustBuild(a *tArchive) []byte {
	b, _ := a.buildLayout(false)
	return b
}

// build writes the archive as pg_dump would, with the data offsets of the entries whose
// offset is set pointing at their blocks.
func (a *tArchive) build() ([]byte, tLayout) { return a.buildLayout(true) }

func (a *tArchive) buildLayout(record bool) ([]byte, tLayout) {
	var lay tLayout
	if record {
		lay.must, lay.kinds = map[int]bool{}, map[int]string{}
	}
	w := &tWriter{intSize: int(a.intSize), lay: &lay}
	w.mark("magic")
	w.b = append(w.b, "PGDMP"...)
	w.mustBytes(5)
	w.byte(a.vmaj, true, "vmaj")
	w.byte(a.vmin, true, "vmin")
	w.byte(a.vrev, false, "vrev")
	w.byte(a.intSize, true, "intSize")
	w.byte(a.offSize, true, "offSize")
	w.byte(formatCustom, true, "format")
	if a.version() >= version1_15 {
		w.byte(byte(a.compression), true, "compression")
	} else {
		w.int(a.compression, true, "compression")
	}
	for _, v := range a.tm {
		w.int(v, false, "time")
	}
	w.str(a.dbname, false, "dbname")
	w.str(a.serverVersion, false, "server version")
	w.str(a.dumpVersion, false, "dump version")
	lay.tocStart = len(w.b)
	w.int(len(a.entries), false, "TOC count")
	setCount := 0
	for _, e := range a.entries {
		if e.offFlag == offPosSet {
			setCount++
		}
	}
	offsetAt := map[int]int{} // dump id → position of its offset bytes
	for _, e := range a.entries {
		w.int(e.id, e.hadDumper == 1, "dump id")
		w.int(e.hadDumper, true, "hadDumper")
		w.str(e.tableoid, true, "tableoid")
		w.str(e.oid, true, "oid")
		w.str(e.tag, false, "tag")
		w.str(e.desc, false, "desc")
		w.int(e.section, true, "section")
		w.str(e.defn, false, "defn")
		w.str(e.drop, false, "drop")
		w.str(e.copy, false, "copy")
		w.str(e.namespace, false, "namespace")
		w.str(e.tablespace, false, "tablespace")
		if a.version() >= version1_14 {
			w.str(e.tableam, false, "tableam")
		}
		if a.version() >= version1_16 {
			w.int(e.relkind, false, "relkind")
		}
		w.str(e.owner, false, "owner")
		w.str(e.withOids, true, "withOids")
		for _, d := range e.deps {
			w.str(tStr{s: d}, true, "dependency")
		}
		w.str(tStr{null: true}, false, "dependency end")
		w.byte(e.offFlag, true, "offset flag")
		w.mark("offset")
		if e.offFlag == offPosSet {
			offsetAt[e.id] = len(w.b)
			lay.offsets = append(lay.offsets, len(w.b))
		}
		for i := range int(a.offSize) {
			w.b = append(w.b, byte(e.offset>>(8*i)))
		}
		if e.offFlag == offPosSet && setCount >= 2 {
			w.mustBytes(int(a.offSize))
		}
	}
	lay.tocEnd = len(w.b)
	for _, blk := range a.blocks {
		start := len(w.b)
		lay.blockStarts = append(lay.blockStarts, start)
		if p, ok := offsetAt[blk.id]; ok {
			off := int64(start) + a.offsetBase
			for i := range int(a.offSize) {
				w.b[p+i] = byte(off >> (8 * i))
			}
		}
		w.byte(blk.typ, true, "block type")
		w.int(blk.id, true, "block id")
		if blk.rawChunkLen != 0 {
			w.int(blk.rawChunkLen, false, "raw chunk length")
		}
		switch blk.typ {
		case blkData:
			w.chunks(blk.chunks)
		case blkBlobs:
			for _, lo := range blk.los {
				w.int(lo.oid, false, "LO oid")
				w.chunks(lo.chunks)
			}
			w.int(0, false, "LO end")
		}
	}
	return w.b, lay
}

// tableRows counts the rows of db's tables outside the system schemas with count(*).
func tableRows(t testing.TB, db testworld.Database) map[Table]int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), db.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	rows, err := conn.Query(t.Context(), `SELECT schemaname, tablename, quote_ident(schemaname) || '.' || quote_ident(tablename)
		FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	quoted := map[Table]string{}
	for rows.Next() {
		var tb Table
		var q string
		if err := rows.Scan(&tb.Schema, &tb.Name, &q); err != nil {
			t.Fatal(err)
		}
		quoted[tb] = q
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	counts := make(map[Table]int64, len(quoted))
	for tb, q := range quoted {
		var n int64
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[tb] = n
	}
	return counts
}
