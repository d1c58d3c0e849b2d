package pgbackup

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
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

// filterPlain copies a plain-format dump from src to dst line by line, dropping the seed
// statements outside COPY data. Lines longer than the buffer (large bytea or text values) pass
// through in pieces. It reports whether the dump's closing trailer was seen.
//
// With freeze, every COPY loads its rows already frozen (COPY ... WITH (FREEZE)): the index
// builds and the first reads after the restore then need no commit-status lookups and set no
// hint bits. PostgreSQL allows it only for a table created or truncated in the same
// transaction, which holds for every table of a dump restored in one transaction.
func filterPlain(dst io.Writer, src io.Reader, freeze bool) (complete bool, err error) {
	r := bufio.NewReaderSize(src, 1<<20)
	inCopy := false  // inside the data of a COPY ... FROM stdin; block
	midLine := false // the previous piece was not the end of its line
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			whole := !midLine && err == nil // a complete line, start to newline
			drop := false
			if whole {
				switch {
				case inCopy:
					inCopy = !bytes.Equal(line, []byte("\\.\n"))
				case bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(line, copyFromStdin):
					inCopy = true
					if freeze {
						head := line[:len(line)-len(copyFromStdin)]
						if _, werr := dst.Write(head); werr != nil {
							return false, werr
						}
						line = copyFreeze
					}
				case bytes.Equal(line, dumpTrailer):
					complete = true
				default:
					drop = seedLine.Match(line)
				}
			}
			if !drop {
				if _, werr := dst.Write(line); werr != nil {
					return false, werr
				}
			}
			midLine = line[len(line)-1] != '\n'
		}
		switch {
		case err == nil || errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return complete && !midLine, nil
		default:
			return false, err
		}
	}
}
