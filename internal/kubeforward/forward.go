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
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
)

// Options configure a Forward.
type Options struct {
	Config    *rest.Config
	Client    kubernetes.Interface
	Namespace string
	Spec      forwardspec.Spec
	// PodWait bounds how long one new connection waits for a pod to run and be ready (the
	// first look at the start included). Default 2 minutes.
	PodWait time.Duration
	Log     *slog.Logger
}

// Forward is a port-forward from 127.0.0.1:<free port> to a pod found from a Spec. It lives
// until Close. Each local connection gets a connection of its own through the API server, to
// the pod that is ready at that moment.
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

// Start checks that the target exists and has a ready pod (waiting up to PodWait), then
// listens on a free port of 127.0.0.1. A target that does not exist fails at once with a
// *NotFoundError.
func Start(ctx context.Context, opts Options) (*Forward, error) {
	if opts.PodWait <= 0 {
		opts.PodWait = 2 * time.Minute
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

// Close stops listening, ends every forwarded connection and waits for them. It is safe on a
// nil Forward and more than once.
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
	for c := range f.open {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
	err := f.listener.Close()
	f.wg.Wait()
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
// chosen.
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
	f.log.InfoContext(f.ctx, "port-forward reaches pod", args...)
}

// streamTimeout bounds the wait for the API server's error stream once the data is done.
const streamTimeout = 5 * time.Second

// handle forwards one local connection: it resolves the pod now, opens a port-forward
// connection to it through the API server, and copies both ways until either side ends.
func (f *Forward) handle(c net.Conn) error {
	t, err := f.resolver.resolve(f.ctx, false)
	if err != nil {
		return err
	}
	conn, via, err := f.dial(t.pod.Name)
	if err != nil {
		return fmt.Errorf("port-forward to pod %s: %w", t.pod.Name, err)
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
	remoteDone := make(chan struct{})
	go func() {
		io.Copy(c, data)
		close(remoteDone)
	}()
	localDone := make(chan struct{})
	go func() {
		io.Copy(data, c)
		data.Close() // the pod's side sees the end of the client's data
		close(localDone)
	}()
	select {
	case <-remoteDone:
	case <-localDone:
		select {
		case <-remoteDone:
		case <-time.After(streamTimeout):
		}
	}
	data.Reset()
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
