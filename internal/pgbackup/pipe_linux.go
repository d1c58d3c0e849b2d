package pgbackup

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe asks the kernel for a pipe buffer of pipeSize. It is best effort: an unprivileged
// process may be limited by /proc/sys/fs/pipe-max-size, and a smaller pipe still works.
func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// Control, not Fd: Fd would switch the file to blocking mode.
	rc.Control(func(fd uintptr) {
		unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}
