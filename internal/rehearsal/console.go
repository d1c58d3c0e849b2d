package rehearsal

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// console puts the rehearsal's narration and the output of the binary it runs onto one writer,
// a whole line at a time, as they happen: the simulated Keycloak narrates from its own goroutine
// while a run is going on.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

// say writes one line of narration.
func (c *console) say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "==> "+format+"\n", args...)
}

// output returns a writer for one run's stdout and stderr: it keeps everything written, for the
// step's Output, and passes whole lines on to the console. Call flush when the run has ended.
func (c *console) output() *runOutput { return &runOutput{c: c} }

type runOutput struct {
	c       *console
	all     bytes.Buffer
	pending []byte
}

func (o *runOutput) Write(p []byte) (int, error) {
	o.all.Write(p)
	o.pending = append(o.pending, p...)
	if i := bytes.LastIndexByte(o.pending, '\n'); i >= 0 {
		o.c.mu.Lock()
		_, err := o.c.w.Write(o.pending[:i+1])
		o.c.mu.Unlock()
		o.pending = append(o.pending[:0], o.pending[i+1:]...)
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush passes on what is left of a last line without a newline.
func (o *runOutput) flush() {
	if len(o.pending) == 0 {
		return
	}
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	o.c.w.Write(append(o.pending, '\n'))
	o.pending = nil
}
