//go:build unix

package bundle

import (
	"os"
	"syscall"
)

// fileOwnerOf reads the owner of a file from its stat.
func fileOwnerOf(fi os.FileInfo) (FileOwner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileOwner{}, false
	}
	return FileOwner{UID: int(st.Uid), GID: int(st.Gid)}, true
}
