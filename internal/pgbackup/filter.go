package pgbackup

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
)

// seedLine matches the statements of a plain dump that a non-superuser owner cannot run and
// that every database already has: the public schema and the plpgsql extension. These are the
// vendor's `grep -v -E` patterns, anchored at the start of a statement (the vendor's grep would
// also drop a data row that happens to contain the text) and with the --if-exists forms.
var seedLine = regexp.MustCompile(`^(DROP SCHEMA (IF EXISTS )?public[; ]|CREATE SCHEMA public[; ]|COMMENT ON SCHEMA public |DROP EXTENSION (IF EXISTS )?plpgsql[; ]|CREATE EXTENSION IF NOT EXISTS plpgsql[; ]|COMMENT ON EXTENSION plpgsql )`)

// dumpTrailer is the line pg_dump writes when a plain dump is complete.
var dumpTrailer = []byte("-- PostgreSQL database dump complete\n")

// copyFromStdin ends the COPY statement that starts each table's data in a plain dump.
var copyFromStdin = []byte(" FROM stdin;\n")

// copyFreeze replaces copyFromStdin when a restore loads with COPY ... FREEZE.
var copyFreeze = []byte(" FROM stdin WITH (FREEZE);\n")

// copyEnd is the line that ends a COPY block's data.
var copyEnd = []byte("\\.\n")

// filterOptions say how filterPlain rewrites the dump.
type filterOptions struct {
	// freeze loads every COPY's rows already frozen (COPY ... WITH (FREEZE)): the index
	// builds and the first reads after the restore then need no commit-status lookups and set
	// no hint bits. PostgreSQL allows it only for a table created or truncated in the same
	// transaction, which holds for every table of a dump restored in one transaction.
	freeze bool
	// settings are the names of the target server's settings (pg_settings), lower case. When
	// set, a session setting in the script's header that the server does not know (and that
	// is not a custom setting, whose name has a dot) is dropped:
	// a newer pg_dump writes settings an older server refuses (pg_dump 17's
	// transaction_timeout), and they only tune the restoring session.
	settings map[string]bool
	// settingsAnywhere drops such settings wherever a statement starts, not only in the
	// header: pg_dump sets default_table_access_method and the like before the objects that
	// need them, which a server of an older major than the dump's source refuses. Only for
	// restores into such a server (allow-older-server), since a line inside a routine's body
	// may look the same.
	settingsAnywhere bool
}

// plainDump is what filterPlain saw of a plain dump.
type plainDump struct {
	// complete: the dump's closing trailer was seen, and the dump ended with a whole line.
	complete bool
	// rows are the data lines (rows, in COPY text format) of each table the dump's COPY
	// blocks load, by row-count key (tableKey).
	rows map[string]int64
	// dropped are the header's settings that the target server does not know, in order.
	dropped []string
}

// headerSetting matches a session setting in a dump's header, as pg_dump writes them:
// `SET name = value;` and `SELECT pg_catalog.set_config('name', value, false);`.
var headerSetting = regexp.MustCompile(`^(?:SET ([A-Za-z_][A-Za-z0-9_.]*) = .*;|SELECT pg_catalog\.set_config\('([A-Za-z_][A-Za-z0-9_.]*)', .*\);)\n$`)

// inHeader reports whether a whole line outside COPY data may still be part of a dump's
// header: blank, a comment, a psql meta-command (\restrict) or a session setting. The first
// other line is the first statement, and the header ends there.
func inHeader(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) == 0 || bytes.HasPrefix(t, []byte("--")) || bytes.HasPrefix(t, []byte(`\`)) || headerSetting.Match(line)
}

// filterPlain copies a plain-format dump from src to dst, dropping the seed statements outside
// COPY data and counting each table's rows. COPY data moves in large pieces, statements a line
// at a time; lines longer than the buffer (large bytea or text values) pass through in pieces.
func filterPlain(dst io.Writer, src io.Reader, opts filterOptions) (plainDump, error) {
	d := plainDump{rows: map[string]int64{}}
	r := bufio.NewReaderSize(src, 1<<20)
	table := ""      // the row-count key of the COPY block being read
	inCopy := false  // inside the data of a COPY ... FROM stdin; block
	midLine := false // the previous piece was not the end of its line
	header := true   // no statement other than a session setting seen yet
	for {
		if inCopy && !midLine {
			rows, err := copyRows(r, dst)
			d.rows[table] += rows
			if err != nil {
				return d, err
			}
		}
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			whole := !midLine && err == nil // a complete line, start to newline
			drop := false
			switch {
			case inCopy && whole && bytes.Equal(line, copyEnd):
				inCopy = false
			case inCopy:
				if line[len(line)-1] == '\n' {
					d.rows[table]++
				}
			case !whole:
				header = false
			case (header || opts.settingsAnywhere) && headerSetting.Match(line), header && inHeader(line):
				if m := headerSetting.FindSubmatch(line); m != nil && opts.settings != nil {
					name := strings.ToLower(string(m[1]) + string(m[2]))
					// A name with a dot is a custom setting, which every server accepts.
					if drop = !opts.settings[name] && !strings.Contains(name, "."); drop && !slices.Contains(d.dropped, name) {
						d.dropped = append(d.dropped, name)
					}
				}
			case bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(line, copyFromStdin):
				inCopy = true
				table = copyTable(line)
				d.rows[table] += 0
				if opts.freeze {
					head := line[:len(line)-len(copyFromStdin)]
					if _, werr := dst.Write(head); werr != nil {
						return d, werr
					}
					line = copyFreeze
				}
			case bytes.Equal(line, dumpTrailer):
				d.complete = true
			default:
				header = false
				drop = seedLine.Match(line)
			}
			if !drop {
				if _, werr := dst.Write(line); werr != nil {
					return d, werr
				}
			}
			midLine = line[len(line)-1] != '\n'
		}
		switch {
		case err == nil || errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			d.complete = d.complete && !midLine
			return d, nil
		default:
			d.complete = false
			return d, err
		}
	}
}

// copyRows writes the whole data lines of a COPY block that are in r's buffer (reading if it
// is empty) to dst, in one piece per buffer, up to the line that ends the block, and returns
// how many it wrote. It stops, leaving the rest to the caller's line-by-line reading, at that
// end line, at a line longer than the buffered data, and at a read error.
func copyRows(r *bufio.Reader, dst io.Writer) (int64, error) {
	var rows int64
	for {
		if _, err := r.Peek(1); err != nil {
			return rows, nil // the caller's read reports it
		}
		buf, _ := r.Peek(r.Buffered())
		if bytes.HasPrefix(buf, copyEnd) {
			return rows, nil
		}
		var n int
		if i := bytes.Index(buf, []byte("\n\\.\n")); i >= 0 {
			n = i + 1
		} else {
			n = bytes.LastIndexByte(buf, '\n') + 1
		}
		if n == 0 {
			return rows, nil
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return rows, err
		}
		rows += int64(bytes.Count(buf[:n], []byte{'\n'}))
		r.Discard(n)
	}
}

// copyTable returns the row-count key of the table a dump's COPY statement loads: the name
// as rowCounts writes it (without the schema for public), taken from the statement pg_dump
// writes, `COPY schema.table (columns) FROM stdin;`, with either part double-quoted when
// needed. A statement it cannot read gives the statement itself, which no table matches.
func copyTable(stmt []byte) string {
	s := strings.TrimPrefix(string(stmt), "COPY ")
	schema, rest, ok := cutIdent(s)
	if !ok || !strings.HasPrefix(rest, ".") {
		return string(stmt)
	}
	name, rest, ok := cutIdent(rest[1:])
	if !ok || !strings.HasPrefix(rest, " ") {
		return string(stmt)
	}
	return tableKey(schema, name)
}

// tableKey is a table's key in the manifest's row counts: its name, after its schema and a
// dot unless the schema is public.
func tableKey(schema, name string) string {
	if schema == "public" {
		return name
	}
	return schema + "." + name
}

// cutIdent reads one SQL identifier at the start of s, as pg_dump's fmtId writes it: bare
// (lower case letters, digits, underscores, dollar signs) or double-quoted with doubled
// quotes inside.
func cutIdent(s string) (ident, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], b.Len() > 0
		}
		return "", s, false
	}
	i := strings.IndexAny(s, ". ")
	if i <= 0 {
		return "", s, false
	}
	return s[:i], s[i:], true
}
