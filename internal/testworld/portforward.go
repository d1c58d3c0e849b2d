package testworld

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
)

// PodPostgresPort is the container port whose port-forwards reach PostgreSQL: a port-forward
// to port 5432 of any kwok pod (kubectl port-forward, client-go's portforward) is served by the
// kwok controller (testdata/kwok/92-portforward.yaml.tmpl) with a connection to the relay of
// the test binary that started the cluster, which passes it on to the binary's shared
// PostgreSQL server, the one Postgres gives databases on. A test whose release's database is
// "in the cluster" connects through the forward with its Database's name, owner and password.
const PodPostgresPort = 5432

// relay is a TCP listener on 127.0.0.1 that passes each connection on to the shared
// PostgreSQL server, starting the server on the first connection.
type relay struct {
	listener net.Listener
	target   func() (string, error)

	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
	wg    sync.WaitGroup
	count int // connections accepted
}

// startRelay listens on a free port of 127.0.0.1 and relays every connection to the address
// target returns at that moment.
func startRelay(target func() (string, error)) (*relay, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &relay{listener: l, target: target, conns: make(map[net.Conn]bool)}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// sharedPostgresAddr is the address of the binary's shared PostgreSQL server.
func sharedPostgresAddr() (string, error) {
	srv, err := shared.pg()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port)), nil
}

func (r *relay) port() int { return r.listener.Addr().(*net.TCPAddr).Port }

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.listener.Accept()
		if err != nil {
			return
		}
		if !r.track(c, true) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.track(c, false)
			r.pass(c)
		}()
	}
}

// track adds (or removes) an open connection; it refuses to add once the relay is closed.
func (r *relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.done {
		return false
	}
	r.conns[c] = true
	r.count++
	return true
}

func (r *relay) pass(c net.Conn) {
	defer c.Close()
	addr, err := r.target()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testworld: relay: %v\n", err)
		return
	}
	up, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testworld: relay: %v\n", err)
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		close(done)
	}()
	io.Copy(c, up)
	// Either side's end ends the relayed connection: PostgreSQL needs no half-close.
	c.Close()
	up.Close()
	<-done
}

// connections is how many connections the relay has accepted so far.
func (r *relay) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// close stops accepting, ends the open connections and waits for them.
func (r *relay) close() {
	r.mu.Lock()
	r.done = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.listener.Close()
	r.wg.Wait()
}

// PostgresForwards is how many port-forwarded connections to PodPostgresPort the cluster's
// relay has passed on to the shared PostgreSQL server so far, for every test of the binary.
func (k Kube) PostgresForwards() int { return k.cluster.relay.connections() }
