// Package pgarchive reads PostgreSQL custom-format archives (pg_dump --format=custom) in
// process, from a stream: it walks the header, the table of contents and every data block the
// table of contents announces, to the end, and counts the rows of each table's data on the
// way. A custom archive has no trailer, so a truncated one (pg_dump killed, its output cut
// short) looks whole to anything that does not read it to its end; the backup reads pg_dump's
// output through Read as it streams by, to know the archive it keeps is complete and how many
// rows each table has, without a pg_restore beside it or a count(*) on the server.
//
// Only uncompressed archives (pg_dump --compress=0) of the format versions of pg_dump 10 to 18
// are read.
//
// A custom-format archive (pg_dump -Fc), as pg_backup_archiver.c and pg_backup_custom.c write
// it, is:
//
//	header   "PGDMP", vmaj, vmin, vrev, intSize, offSize, format (1 = custom) bytes;
//	         compression: an int level (format < 1.15) or an algorithm byte (1.15+);
//	         7 ints of the creation time (struct tm); strings dbname, server version, pg_dump version
//	toc      an int count, then per entry: int dumpId, int hadDumper, strings tableoid, oid,
//	         tag, desc, int section, strings defn, dropStmt, copyStmt, namespace, tablespace,
//	         tableam (1.14+), int relkind (1.16+), strings owner, "false" (WITH OIDS), the
//	         dependency ids as strings ended by a NULL string, and the data offset: a flag byte
//	         (1 not set, 2 set, 3 no data) and offSize bytes little-endian
//	data     for each entry with a data dumper, in TOC order: a block-type byte (1 data,
//	         3 large objects), int dumpId, then
//	           data:  chunks (int length, bytes) ended by a zero length
//	           LOs:   per object an int OID then chunks ended by a zero length; a zero OID ends
//
// An int is a sign byte (0 or 1) and intSize bytes of magnitude, least significant first; a
// string is an int length (-1 for NULL) and that many bytes. pg_dump writes the data offsets
// only when its output is seekable, by rewriting the TOC in place after the data; to a pipe
// they stay "not set". With --compress=0 each WriteData call is one chunk: pg_dump 15 writes
// a chunk per COPY row.
package pgarchive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Info describes a custom-format archive that was read to its end.
type Info struct {
	Version    string // vmaj.vmin.vrev as pg_dump writes it, e.g. "1.14.0"
	Entries    int    // TOC entries
	DataBlocks int    // data blocks (table data, blobs) read
	DataBytes  int64  // payload bytes of all data chunks
	// Rows are the rows of each table's data (TABLE DATA entries), by table: the entry's
	// namespace and tag. It is nil when the archive has no table data.
	Rows map[Table]int64
}

// Table names a table by its schema and its name, as the archive's TOC has them (unquoted).
type Table struct{ Schema, Name string }

// ErrUnsupported: Read does not read this archive (format version or compression);
// pg_restore may.
var ErrUnsupported = errors.New("custom archive format version or compression not known to the built-in reader")

// ErrMalformed: the archive is not what pg_dump writes.
var ErrMalformed = errors.New("malformed custom archive")

// Archive format versions Read knows: 1.12 (pg_dump 9.0 to 10.2) and 1.13 (the 2018
// search_path fix, pg_dump 9.3.22+, 10.3+, 11) only lack the tableam field of 1.14 (pg_dump
// 12 to 15); 1.15 (pg_dump 16) has a compression-algorithm byte in the header; 1.16
// (pg_dump 17 and 18) adds the relkind to each TOC entry.
const (
	version1_12 = 1<<16 | 12<<8
	version1_14 = 1<<16 | 14<<8
	version1_15 = 1<<16 | 15<<8
	version1_16 = 1<<16 | 16<<8
	versionMax  = 1<<16 | 16<<8 | 255

	formatCustom = 1 // ArchiveFormat archCustom

	blkData  = 1 // BLK_DATA
	blkBlobs = 3 // BLK_BLOBS

	offPosNotSet = 1 // K_OFFSET_POS_NOT_SET
	offPosSet    = 2 // K_OFFSET_POS_SET
	offNoData    = 3 // K_OFFSET_NO_DATA

	bufSize       = 1 << 20
	maxString     = 1 << 30 // no TOC string pg_dump writes comes near; a longer one is garbage
	keptStringLen = 256     // tag and desc are kept up to this length, for messages
)

// VersionKnown reports whether Read reads the archives of a pg_dump of this major
// version.
func VersionKnown(pgDumpMajor int) bool {
	return pgDumpMajor >= 10 && pgDumpMajor <= 18
}

// Read reads a PostgreSQL custom-format archive (pg_dump -Fc) from r to its end,
// checking its structure: header, table of contents, and every data block the TOC
// announces, in order, each ending with its zero-length terminator, and nothing after the
// last block. It fails on a truncated or malformed archive, and with ErrUnsupported
// on a format version it does not know (pg_restore may read it).
//
// Only uncompressed archives (--compress=0) are walked: a compressed one fails with
// ErrUnsupported. A truncated archive fails with an error wrapping io.ErrUnexpectedEOF,
// a malformed one with ErrMalformed, and a read error is returned wrapped. It stops
// reading at the first error: a caller that feeds it through a pipe must then stop writing
// (io.PipeReader.CloseWithError) or drain the rest.
func Read(r io.Reader) (Info, error) {
	br := bufPool.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		bufPool.Put(br)
	}()
	a := &reader{br: br}
	return a.read()
}

// bufPool holds the 1 MiB readers of Read.
var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

type reader struct {
	br      *bufio.Reader
	pos     int64 // bytes consumed
	version int   // vmaj<<16 | vmin<<8 | vrev
	intSize int
	offSize int
	info    Info
}

// tocEntry is what the data section is checked against.
type tocEntry struct {
	id        int
	hadDumper bool
	desc, tag string
	namespace string // kept for TABLE DATA entries only
	offState  byte
	offset    int64
}

func (a *reader) read() (Info, error) {
	if err := a.readHeader(); err != nil {
		return Info{}, err
	}
	toc, err := a.readTOC()
	if err != nil {
		return Info{}, err
	}
	a.info.Entries = len(toc)
	if err := a.readData(toc); err != nil {
		return Info{}, err
	}
	return a.info, nil
}

func (a *reader) readHeader() error {
	magic, err := a.peek(5, "header")
	if err != nil {
		return err
	}
	if string(magic) != "PGDMP" {
		return a.malformed("no PGDMP magic: not a custom-format archive")
	}
	a.consume(5)
	vmaj, err := a.readByte("header version")
	if err != nil {
		return err
	}
	vmin, err := a.readByte("header version")
	if err != nil {
		return err
	}
	if vmaj != 1 || vmin == 0 {
		return fmt.Errorf("%w: archive format version %d.%d", ErrUnsupported, vmaj, vmin)
	}
	vrev, err := a.readByte("header version")
	if err != nil {
		return err
	}
	a.version = int(vmaj)<<16 | int(vmin)<<8 | int(vrev)
	a.info.Version = fmt.Sprintf("%d.%d.%d", vmaj, vmin, vrev)
	if a.version < version1_12 || a.version > versionMax {
		return fmt.Errorf("%w: archive format version %s", ErrUnsupported, a.info.Version)
	}
	intSize, err := a.readByte("header int size")
	if err != nil {
		return err
	}
	offSize, err := a.readByte("header offset size")
	if err != nil {
		return err
	}
	// pg_dump writes sizeof(int) and sizeof(pgoff_t): 4 and 8 on every platform it runs on.
	if intSize < 4 || intSize > 8 || offSize < 4 || offSize > 16 {
		return a.malformed(fmt.Sprintf("int size %d, offset size %d", intSize, offSize))
	}
	a.intSize, a.offSize = int(intSize), int(offSize)
	format, err := a.readByte("header format")
	if err != nil {
		return err
	}
	if format != formatCustom {
		return a.malformed(fmt.Sprintf("archive format %d, not custom (1)", format))
	}
	if a.version >= version1_15 {
		alg, err := a.readByte("header compression")
		if err != nil {
			return err
		}
		if alg != 0 {
			names := map[byte]string{1: "gzip", 2: "lz4", 3: "zstd"}
			name := names[alg]
			if name == "" {
				name = "algorithm " + strconv.Itoa(int(alg))
			}
			return fmt.Errorf("%w: the archive is compressed (%s); only --compress=0 archives are read", ErrUnsupported, name)
		}
	} else {
		level, err := a.readInt("header compression")
		if err != nil {
			return err
		}
		if level != 0 {
			return fmt.Errorf("%w: the archive is compressed (gzip level %d); only --compress=0 archives are read", ErrUnsupported, level)
		}
	}
	// The creation time, a struct tm as localtime() filled it in.
	for _, f := range [...]struct {
		name   string
		lo, hi int64
	}{{"second", 0, 61}, {"minute", 0, 59}, {"hour", 0, 23}, {"day", 1, 31}, {"month", 0, 11}, {"year", 0, 8100}, {"isdst", -1, 1}} {
		v, err := a.readInt("header time")
		if err != nil {
			return err
		}
		if v < f.lo || v > f.hi {
			return a.malformed(fmt.Sprintf("creation time %s %d", f.name, v))
		}
	}
	for _, what := range []string{"header database name", "header server version", "header pg_dump version"} {
		if err := a.skipStr(what); err != nil {
			return err
		}
	}
	return nil
}

func (a *reader) readTOC() ([]tocEntry, error) {
	count, err := a.readInt("TOC entry count")
	if err != nil {
		return nil, err
	}
	if count < 0 {
		return nil, a.malformed(fmt.Sprintf("TOC entry count %d", count))
	}
	toc := make([]tocEntry, 0, min(count, 4096))
	ids := make(map[int]struct{}, min(count, 4096))
	for i := range int(count) {
		e, err := a.readEntry()
		if err != nil {
			return nil, fmt.Errorf("TOC entry %d of %d: %w", i+1, count, err)
		}
		if _, dup := ids[e.id]; dup {
			return nil, a.malformed(fmt.Sprintf("TOC entry %d: dump id %d appears twice", i+1, e.id))
		}
		ids[e.id] = struct{}{}
		toc = append(toc, e)
	}
	return toc, nil
}

func (a *reader) readEntry() (tocEntry, error) {
	var e tocEntry
	id, err := a.readInt("dump id")
	if err != nil {
		return e, err
	}
	if id <= 0 {
		return e, a.malformed(fmt.Sprintf("dump id %d", id))
	}
	e.id = int(id)
	had, err := a.readInt("data dumper flag")
	if err != nil {
		return e, err
	}
	if had != 0 && had != 1 {
		return e, a.malformed(fmt.Sprintf("data dumper flag %d", had))
	}
	e.hadDumper = had == 1
	for _, what := range []string{"catalog table oid", "catalog oid"} {
		if err := a.numberStr(what); err != nil {
			return e, err
		}
	}
	if e.tag, _, err = a.readStr("tag"); err != nil {
		return e, err
	}
	var null bool
	if e.desc, null, err = a.readStr("desc"); err != nil {
		return e, err
	}
	if null || e.desc == "" {
		return e, a.malformed("entry without a type (desc)")
	}
	section, err := a.readInt("section")
	if err != nil {
		return e, err
	}
	if section < 1 || section > 4 { // SECTION_NONE .. SECTION_POST_DATA
		return e, a.malformed(fmt.Sprintf("section %d", section))
	}
	for _, what := range []string{"definition", "drop statement", "copy statement"} {
		if err := a.skipStr(what); err != nil {
			return e, err
		}
	}
	if e.desc == "TABLE DATA" {
		if e.namespace, _, err = a.readStr("namespace"); err != nil {
			return e, err
		}
	} else if err := a.skipStr("namespace"); err != nil {
		return e, err
	}
	if err := a.skipStr("tablespace"); err != nil {
		return e, err
	}
	if a.version >= version1_14 {
		if err := a.skipStr("table access method"); err != nil {
			return e, err
		}
	}
	if a.version >= version1_16 {
		relkind, err := a.readInt("relkind")
		if err != nil {
			return e, err
		}
		if relkind < 0 || relkind > 255 {
			return e, a.malformed(fmt.Sprintf("relkind %d", relkind))
		}
	}
	if err := a.skipStr("owner"); err != nil {
		return e, err
	}
	withOids, _, err := a.strPeek("WITH OIDS flag", 5)
	if err != nil {
		return e, err
	}
	if string(withOids) != "false" && string(withOids) != "true" {
		return e, a.malformed(fmt.Sprintf("WITH OIDS flag %q", withOids))
	}
	for {
		isNull, err := a.depStr()
		if err != nil {
			return e, err
		}
		if isNull {
			break
		}
	}
	// _ReadExtraToc of the custom format: the data offset.
	flag, err := a.readByte("data offset flag")
	if err != nil {
		return e, err
	}
	if flag != offPosNotSet && flag != offPosSet && flag != offNoData {
		return e, a.malformed(fmt.Sprintf("data offset flag %d", flag))
	}
	e.offState = flag
	b, err := a.peek(a.offSize, "data offset")
	if err != nil {
		return e, err
	}
	var off uint64
	for i, c := range b {
		if i >= 8 {
			if c != 0 {
				return e, a.malformed("data offset too large")
			}
			continue
		}
		off |= uint64(c) << (8 * i)
	}
	a.consume(a.offSize)
	if off > math.MaxInt64 {
		return e, a.malformed("data offset too large")
	}
	e.offset = int64(off)
	// pg_dump writes NO_DATA exactly for the entries without a data dumper.
	if e.hadDumper != (flag != offNoData) {
		return e, a.malformed(fmt.Sprintf("dump id %d: data dumper flag %t with data offset flag %d", e.id, e.hadDumper, flag))
	}
	return e, nil
}

// readData reads the data blocks: one for each entry with a data dumper, in TOC order, then
// the end of the archive.
func (a *reader) readData(toc []tocEntry) error {
	var want []*tocEntry
	for i := range toc {
		if toc[i].hadDumper {
			want = append(want, &toc[i])
		}
	}
	// With offsets (a seekable output), each block must start where the TOC says. The
	// offsets count from the start of the file pg_dump wrote to, which need not be the start
	// of the archive (pg_dump >> file): compare them relative to the first block's.
	var offsetBase int64
	haveBase := false
	for n, e := range want {
		start := a.pos
		typ, err := a.br.ReadByte()
		if err == io.EOF {
			return fmt.Errorf("custom archive truncated: it ends after %d of %d data blocks, %d missing (next: dump id %d, %s %q): %w",
				n, len(want), len(want)-n, e.id, e.desc, e.tag, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("read custom archive: %w", err)
		}
		a.pos++
		if typ != blkData && typ != blkBlobs {
			return a.malformedAt(start, fmt.Sprintf("block type %d where data block %d of %d (dump id %d) should start", typ, n+1, len(want), e.id))
		}
		id, err := a.readInt("data block header")
		if err != nil {
			return err
		}
		if id != int64(e.id) {
			return a.malformed(fmt.Sprintf("data block for dump id %d where dump id %d (%s %q) was expected", id, e.id, e.desc, e.tag))
		}
		wantTyp := byte(blkData)
		if e.desc == "BLOBS" {
			wantTyp = blkBlobs
		}
		if typ != wantTyp {
			return a.malformed(fmt.Sprintf("block type %d for dump id %d (%s)", typ, e.id, e.desc))
		}
		if e.offState == offPosSet {
			if !haveBase {
				offsetBase, haveBase = e.offset-start, true
				if offsetBase < 0 {
					return a.malformed(fmt.Sprintf("dump id %d: TOC offset %d, block at byte %d", e.id, e.offset, start))
				}
			} else if e.offset-offsetBase != start {
				return a.malformed(fmt.Sprintf("dump id %d: TOC offset %d, block at byte %d", e.id, e.offset-offsetBase, start))
			}
		}
		if typ == blkData {
			var rows *rowCounter
			if e.desc == "TABLE DATA" {
				rows = &rowCounter{}
			}
			err = a.skipChunks(rows)
			if rows != nil && err == nil {
				if a.info.Rows == nil {
					a.info.Rows = map[Table]int64{}
				}
				a.info.Rows[Table{e.namespace, e.tag}] += rows.rows()
			}
		} else {
			err = a.skipLOs()
		}
		if err != nil {
			return fmt.Errorf("data block of dump id %d (%s %q): %w", e.id, e.desc, e.tag, err)
		}
		a.info.DataBlocks++
	}
	switch _, err := a.br.ReadByte(); {
	case err == io.EOF:
		return nil
	case err != nil:
		return fmt.Errorf("read custom archive: %w", err)
	default:
		return a.malformed("data after the last data block")
	}
}

// skipLOs skips the large objects of a BLOBS block: an OID and its chunks each, ended by a
// zero OID.
func (a *reader) skipLOs() error {
	for {
		// An OID above 2^31 is written as a negative int.
		oid, err := a.readInt("large object OID")
		if err != nil {
			return err
		}
		if oid == 0 {
			return nil
		}
		if err := a.skipChunks(nil); err != nil {
			return fmt.Errorf("large object %d: %w", uint32(oid), err)
		}
	}
}

// skipChunks consumes length-prefixed chunks through the zero length that ends them, passing
// their payload to rows when it is not nil. It walks the chunk headers inside bufio's buffer
// and discards what it has walked in one call, so a chunk costs a few instructions, not a
// call, a copy or an allocation.
func (a *reader) skipChunks(rows *rowCounter) error {
	hdr := 1 + a.intSize
	for {
		if _, err := a.br.Peek(hdr); err != nil {
			return a.eof(err, "data chunk length")
		}
		buf, _ := a.br.Peek(a.br.Buffered())
		i := 0
		for len(buf)-i >= hdr {
			var n uint64
			if hdr == 5 {
				n = uint64(buf[i+1]) | uint64(buf[i+2])<<8 | uint64(buf[i+3])<<16 | uint64(buf[i+4])<<24
			} else {
				n = leUint(buf[i+1 : i+hdr])
			}
			if buf[i] != 0 || n > math.MaxInt32 {
				a.consume(i)
				return a.malformed(fmt.Sprintf("data chunk length (sign byte %d, magnitude %d)", buf[i], n))
			}
			if n == 0 {
				a.consume(i + hdr)
				return nil
			}
			a.info.DataBytes += int64(n)
			if n > uint64(len(buf)-i-hdr) {
				// The chunk runs past the buffer: read through it.
				a.consume(i + hdr)
				if err := a.skipPayload(int(n), rows); err != nil {
					return a.eof(err, "data chunk")
				}
				i = -1
				break
			}
			if rows != nil {
				rows.write(buf[i+hdr : i+hdr+int(n)])
			}
			i += hdr + int(n)
		}
		if i > 0 {
			a.consume(i)
		}
	}
}

// skipPayload consumes n bytes of chunk payload, passing them to rows when it is not nil.
func (a *reader) skipPayload(n int, rows *rowCounter) error {
	if rows == nil {
		return a.skip(n)
	}
	for n > 0 {
		p, err := a.br.Peek(min(n, a.br.Size()))
		rows.write(p)
		a.consume(len(p))
		n -= len(p)
		if err != nil {
			return err
		}
	}
	return nil
}

// rowCounter counts the rows of a table's COPY data as it passes in pieces: its lines, less
// the end marker that pg_dump writes after them into the archive (a line "\." and two empty
// lines).
type rowCounter struct {
	lines int64
	total int64
	tail  []byte // the last bytes seen, at most len(copyEndTail)
}

// copyEndTail is the longest end of COPY data rows() looks for: a newline that ends the last
// row, the end line, two empty lines.
const copyEndTail = "\n\\.\n\n\n"

func (c *rowCounter) write(p []byte) {
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	c.total += int64(len(p))
	c.tail = append(c.tail, p[max(0, len(p)-len(copyEndTail)):]...)
	if extra := len(c.tail) - len(copyEndTail); extra > 0 {
		c.tail = append(c.tail[:0], c.tail[extra:]...)
	}
}

// rows is the number of lines before an end line ("\." followed only by empty lines) that
// ends the data, or all lines when there is none.
func (c *rowCounter) rows() int64 {
	for empty := 2; empty >= 0; empty-- {
		end := "\\.\n" + strings.Repeat("\n", empty)
		if bytes.HasSuffix(c.tail, []byte("\n"+end)) || (c.total == int64(len(end)) && string(c.tail) == end) {
			return c.lines - int64(1+empty)
		}
	}
	return c.lines
}

// consume discards n bytes known to be buffered.
func (a *reader) consume(n int) {
	a.br.Discard(n)
	a.pos += int64(n)
}

// skip discards n bytes, reading as needed.
func (a *reader) skip(n int) error {
	d, err := a.br.Discard(n)
	a.pos += int64(d)
	return err
}

// peek returns the next n bytes without consuming them.
func (a *reader) peek(n int, what string) ([]byte, error) {
	b, err := a.br.Peek(n)
	if err != nil {
		return nil, a.eof(err, what)
	}
	return b, nil
}

func (a *reader) readByte(what string) (byte, error) {
	c, err := a.br.ReadByte()
	if err != nil {
		return 0, a.eof(err, what)
	}
	a.pos++
	return c, nil
}

// readInt reads an int as WriteInt writes it.
func (a *reader) readInt(what string) (int64, error) {
	b, err := a.peek(1+a.intSize, what)
	if err != nil {
		return 0, err
	}
	sign, mag := b[0], leUint(b[1:])
	if sign > 1 || mag > 1<<31 || (sign == 0 && mag == 1<<31) {
		return 0, a.malformed(fmt.Sprintf("%s: not an int (sign byte %d, magnitude %d)", what, sign, mag))
	}
	a.consume(1 + a.intSize)
	if sign == 1 {
		return -int64(mag), nil
	}
	return int64(mag), nil
}

// strLen reads a string's length: -1 for NULL.
func (a *reader) strLen(what string) (int, error) {
	start := a.pos
	n, err := a.readInt(what)
	if err != nil {
		return 0, err
	}
	if n < -1 || n > maxString {
		return 0, a.malformedAt(start, fmt.Sprintf("%s: string length %d", what, n))
	}
	return int(n), nil
}

// readStr reads a string, keeping at most keptStringLen bytes of it.
func (a *reader) readStr(what string) (s string, null bool, err error) {
	n, err := a.strLen(what)
	if err != nil || n < 0 {
		return "", n < 0, err
	}
	b, err := a.peek(min(n, keptStringLen), what)
	if err != nil {
		return "", false, err
	}
	s = string(b)
	if err := a.skip(n); err != nil {
		return "", false, a.eof(err, what)
	}
	return s, false, nil
}

func (a *reader) skipStr(what string) error {
	n, err := a.strLen(what)
	if err != nil || n < 0 {
		return err
	}
	if err := a.skip(n); err != nil {
		return a.eof(err, what)
	}
	return nil
}

// strPeek reads a string of at most max bytes and returns its bytes, valid until the next
// read.
func (a *reader) strPeek(what string, max int) (b []byte, null bool, err error) {
	start := a.pos
	n, err := a.strLen(what)
	if err != nil || n < 0 {
		return nil, n < 0, err
	}
	if n > max {
		return nil, false, a.malformedAt(start, fmt.Sprintf("%s: %d bytes long", what, n))
	}
	if b, err = a.peek(n, what); err != nil {
		return nil, false, err
	}
	a.consume(n)
	return b, false, nil
}

// numberStr reads a non-NULL string of decimal digits, as pg_dump writes OIDs.
func (a *reader) numberStr(what string) error {
	b, null, err := a.strPeek(what, 10)
	if err != nil {
		return err
	}
	if null || !isDecimal(b) {
		return a.malformed(fmt.Sprintf("%s %q", what, b))
	}
	return nil
}

// depStr reads one dependency of a TOC entry, a dump id in decimal, or the NULL that ends
// them.
func (a *reader) depStr() (null bool, err error) {
	b, null, err := a.strPeek("dependency", 10)
	if err != nil || null {
		return null, err
	}
	if !isDecimal(b) {
		return false, a.malformed(fmt.Sprintf("dependency %q", b))
	}
	return false, nil
}

func isDecimal(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func leUint(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// eof turns a read error while reading what into the error Read returns.
func (a *reader) eof(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("custom archive truncated in %s at byte %d: %w", what, a.pos, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read custom archive (%s at byte %d): %w", what, a.pos, err)
}

func (a *reader) malformed(detail string) error { return a.malformedAt(a.pos, detail) }

func (a *reader) malformedAt(pos int64, detail string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, detail, pos)
}
