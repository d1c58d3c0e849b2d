package pgbackup

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the pipe pg_dump writes into. The default 64 KiB has
// pg_dump and this process take turns a dozen times per megabyte; with 1 MiB each side
// moves large pieces per wake-up, which on a busy 2-core machine is measurable CPU.
const pipeSize = 1 << 20

// growPipe asks the kernel for a larger pipe buffer. It is best effort: an unprivileged
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
