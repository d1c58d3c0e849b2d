package kubeforward

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// Options configure a Forward.
type Options struct {
	Config    *rest.Config
	Client    kubernetes.Interface
	Namespace string
	Spec      forwardspec.Spec
	// PodWait bounds how long one new connection waits for a pod to run (the first look at
	// the start included). Default 2 minutes.
	PodWait time.Duration
	// Attempts is how many times a connection tries to open its stream through the API
	// server (the API server or the node agent restarting refuses it for a while); 0 means
	// DefaultAttempts. Backoff is the wait before the second try, doubled before each further
	// one; 0 means DefaultBackoff.
	Attempts int
	Backoff  time.Duration
	Log      *slog.Logger
}

// Defaults of Options.
const (
	DefaultAttempts = 5
	DefaultBackoff  = time.Second
)

// drainTimeout bounds how long Close lets the open connections finish by themselves.
const drainTimeout = 2 * time.Second

// Forward is a port-forward from 127.0.0.1:<free port> to a pod found from a Spec. It lives
// until Close. Each local connection gets a connection of its own through the API server, to
// the pod that is ready at that moment (a running one when none is ready). A stream that
// breaks is logged with its pod, the bytes it carried and why; the client sees its
// connection closed, as it would if the database's host went away, and opens a new one.
type Forward struct {
	opts     Options
	resolver resolver
	listener net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	log      *slog.Logger
	wg       sync.WaitGroup

	mu     sync.Mutex
	open   map[io.Closer]bool
	closed bool
	pods   []PodRef
	via    string // the transport of the last connection
	how    string // how its pod was chosen
}

// PodRef is one pod the forward reached.
type PodRef struct {
	Name string
	UID  types.UID
}

func (p PodRef) String() string { return p.Name + " (uid " + string(p.UID) + ")" }

// Start checks that the target exists and has a running pod (waiting up to PodWait), then
// listens on a free port of 127.0.0.1. A target that does not exist fails at once with a
// *NotFoundError.
func Start(ctx context.Context, opts Options) (*Forward, error) {
	if opts.PodWait <= 0 {
		opts.PodWait = 2 * time.Minute
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	r := resolver{client: opts.Client, namespace: opts.Namespace, spec: opts.Spec, wait: opts.PodWait, poll: 250 * time.Millisecond}
	t, err := r.resolve(ctx, true)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("port-forward: listen on 127.0.0.1: %w", err)
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &Forward{
		opts: opts, resolver: r, listener: l, ctx: fctx, cancel: cancel,
		log: opts.Log, open: make(map[io.Closer]bool),
	}
	f.log.InfoContext(ctx, "port-forward listening", "address", l.Addr().String(), "target", opts.Spec.String(),
		"namespace", opts.Namespace, "pod", t.pod.Name, "port", t.port)
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Host is the address the forward listens on: 127.0.0.1.
func (f *Forward) Host() string { return "127.0.0.1" }

// Port is the local port the forward listens on.
func (f *Forward) Port() int { return f.listener.Addr().(*net.TCPAddr).Port }

// Addr is host:port of the local end.
func (f *Forward) Addr() string { return f.listener.Addr().String() }

// Pods lists the pods the forward's connections reached, in order, each once per change: a
// pod that was replaced appears, then its successor.
func (f *Forward) Pods() []PodRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PodRef(nil), f.pods...)
}

// Transport is how the last connection went through the API server: websocket (SPDY
// tunnelled in a websocket) or spdy; "" before the first.
func (f *Forward) Transport() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.via
}

// Route describes the way the last connection went, for logs: "port-forward to pod
// identity-postgresql-id-0".
func (f *Forward) Route() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.pods); n > 0 {
		return "port-forward to pod " + f.pods[n-1].Name
	}
	return "port-forward to " + f.opts.Spec.String()
}

// Close stops listening, lets the open connections finish by themselves for a moment (their
// clients are closing them), then ends the rest and waits for them. It is safe on a nil
// Forward and more than once.
func (f *Forward) Close() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	err := f.listener.Close()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		f.mu.Lock()
		for c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		<-done
	}
	f.cancel()
	return err
}

func (f *Forward) serve() {
	defer f.wg.Done()
	for {
		c, err := f.listener.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			defer c.Close()
			if err := f.handle(c); err != nil {
				f.log.WarnContext(f.ctx, "port-forward connection failed", "target", f.opts.Spec.String(), "err", err)
			}
		}()
	}
}

// track remembers an open connection so that Close ends it; false once closed.
func (f *Forward) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.open[c] = true
	return true
}

func (f *Forward) untrack(c io.Closer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, c)
}

// reached records the pod a connection went to, logging each change of pod and how it was
// chosen (at Warn when the pod is not ready: no ready one was there).
func (f *Forward) reached(t target, via string) {
	pod := t.pod
	f.mu.Lock()
	defer f.mu.Unlock()
	ref := PodRef{Name: pod.Name, UID: pod.UID}
	var prev PodRef
	if n := len(f.pods); n > 0 {
		prev = f.pods[n-1]
	}
	if prev == ref && f.via == via && f.how == t.how {
		return
	}
	if prev != ref {
		f.pods = append(f.pods, ref)
	}
	f.via, f.how = via, t.how
	args := []any{"pod", pod.Name, "uid", string(pod.UID), "port", t.port, "via", via, "chosen", t.how}
	if prev.Name != "" && prev != ref {
		args = append(args, "replaces", prev.String())
	}
	if t.unready {
		f.log.WarnContext(f.ctx, "port-forward reaches pod", args...)
		return
	}
	f.log.InfoContext(f.ctx, "port-forward reaches pod", args...)
}

// streamTimeout bounds the wait for the pod's side to end once the client's has (the drain),
// and for the API server's error stream once the data is done.
const streamTimeout = 5 * time.Second

// openStream resolves the pod now and opens a port-forward connection to it through the API server,
// trying again (a new look at the pod included) while the API server or the node agent
// refuses it, at most opts.Attempts times.
func (f *Forward) openStream() (httpstream.Connection, target, string, error) {
	wait := f.opts.Backoff
	for attempt := 1; ; attempt++ {
		t, err := f.resolver.resolve(f.ctx, false)
		if err != nil {
			return nil, target{}, "", err
		}
		conn, via, err := f.dial(t.pod.Name)
		if err == nil {
			return conn, t, via, nil
		}
		err = fmt.Errorf("port-forward to pod %s: %w", t.pod.Name, err)
		if attempt >= f.opts.Attempts || permanent(err) || f.ctx.Err() != nil {
			return nil, target{}, "", err
		}
		f.log.WarnContext(f.ctx, "port-forward could not open a stream through the API server; retrying",
			"pod", t.pod.Name, "attempt", fmt.Sprintf("%d/%d", attempt, f.opts.Attempts), "err", err, "retry_in", wait)
		select {
		case <-f.ctx.Done():
			return nil, target{}, "", err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// handle forwards one local connection: it opens a port-forward connection to the pod of the
// moment and copies both ways until either side ends. When the client ends first, the pod's
// side is told (its data stream half-closed) and drained until it ends too, then the stream is
// closed, so that the server sees the session end. When the pod's side ends first, or the
// connection through the API server breaks, the client's connection is closed and the break is
// logged with the pod, the bytes each way and the cause.
func (f *Forward) handle(c net.Conn) error {
	conn, t, via, err := f.openStream()
	if err != nil {
		return err
	}
	if !f.track(conn) {
		conn.Close()
		return nil
	}
	defer f.untrack(conn)
	defer conn.Close()
	f.reached(t, via)

	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(t.port)))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errorStream, err := conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("port-forward to pod %s: error stream: %w", t.pod.Name, err)
	}
	errorStream.Close() // nothing is written to it
	remoteErr := make(chan string, 1)
	go func() {
		msg, _ := io.ReadAll(errorStream)
		remoteErr <- string(msg)
	}()

	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("port-forward to pod %s: data stream: %w", t.pod.Name, err)
	}
	var sent, received atomic.Int64
	var remoteCopyErr error
	remoteDone := make(chan struct{})
	go func() {
		_, remoteCopyErr = io.Copy(&countingWriter{w: c, n: &received}, data)
		close(remoteDone)
	}()
	localDone := make(chan struct{})
	toPod := &countingWriter{w: data, n: &sent}
	go func() {
		io.Copy(toPod, c)
		data.Close() // the pod's side sees the end of the client's data
		close(localDone)
	}()

	var cause string
	select {
	case <-localDone:
		if toPod.err != nil {
			// Not the client's end: the stream to the pod would not take its data.
			cause = toPod.err.Error()
			break
		}
		// The client ended: drain the pod's side until it ends too.
		select {
		case <-remoteDone:
			data.Close()
		case <-time.After(streamTimeout):
			data.Reset()
		}
		conn.RemoveStreams(data, errorStream)
		return f.remoteError(t, remoteErr)
	case <-remoteDone:
		cause = "the pod's side ended it"
		if remoteCopyErr != nil {
			cause = remoteCopyErr.Error()
		}
	case <-conn.CloseChan():
		cause = "the connection through the API server closed"
	}
	// The pod's side or the way to it ended first: the client must see its connection end.
	// The connection through the API server goes too: a copy blocked on it then returns.
	c.Close()
	data.Reset()
	select {
	case msg := <-remoteErr:
		if msg != "" {
			cause = msg
		}
	case <-time.After(100 * time.Millisecond):
	}
	f.log.WarnContext(f.ctx, "port-forward stream broken", "pod", t.pod.Name, "port", t.port,
		"sent", progress.Bytes(sent.Load()), "received", progress.Bytes(received.Load()), "cause", cause)
	conn.Close()
	for _, done := range []chan struct{}{remoteDone, localDone} {
		select {
		case <-done:
		case <-time.After(streamTimeout):
		}
	}
	return nil
}

// countingWriter passes writes on, counts the bytes written and keeps the first error.
type countingWriter struct {
	w   io.Writer
	n   *atomic.Int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// remoteError waits (up to streamTimeout) for the API server's error stream of a connection
// and returns what it says, as an error; nil when it says nothing.
func (f *Forward) remoteError(t target, remoteErr <-chan string) error {
	select {
	case msg := <-remoteErr:
		if msg != "" {
			return fmt.Errorf("port-forward to pod %s port %d: %s", t.pod.Name, t.port, msg)
		}
	case <-time.After(streamTimeout):
	}
	return nil
}

// dial opens a port-forward connection to a pod through the API server: SPDY tunnelled in a
// websocket first, plain SPDY when the server does not take the websocket upgrade (as kubectl
// does). It returns the connection and which of the two it is.
func (f *Forward) dial(pod string) (httpstream.Connection, string, error) {
	u := f.opts.Client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(f.opts.Namespace).Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(f.opts.Config)
	if err != nil {
		return nil, "", err
	}
	plain := &namedDialer{name: "spdy", d: spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)}
	tunnel, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, f.opts.Config)
	if err != nil {
		return nil, "", err
	}
	ws := &namedDialer{name: "websocket", d: tunnel}
	d := portforward.NewFallbackDialerForStreaming(ws, plain, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	conn, _, err := d.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, "", err
	}
	via := plain.name
	if ws.ok {
		via = ws.name
	}
	return conn, via, nil
}

// namedDialer notes whether its dial succeeded, to tell which transport a connection took.
type namedDialer struct {
	name string
	d    httpstream.Dialer
	ok   bool
}

func (n *namedDialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	conn, proto, err := n.d.Dial(protocols...)
	n.ok = err == nil
	return conn, proto, err
}
