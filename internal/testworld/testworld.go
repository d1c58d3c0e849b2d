// Package testworld starts the real parts the tests run against: a PostgreSQL server (and, on
// request, one of each other major offered) and a simulated Kubernetes cluster (kube-apiserver,
// etcd, controller-manager and scheduler with kwok nodes). Each is started once per test binary,
// on loopback only, and torn down when the binary ends; each test gets its own database or
// namespace.
//
// A package that uses the world runs its tests through Main:
//
//	func TestMain(m *testing.M) { testworld.Main(m) }
package testworld

import (
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
)

// world holds the servers shared by all tests of one test binary. It is the one piece of
// process-wide state in the project, and exists only in test binaries: a server per test would
// cost seconds each.
type world struct {
	postgres lazy[*PostgresServer]
	// majors are the servers of PostgresMajor other than the shared one, one per major.
	majorsMu sync.Mutex
	majors   map[int]*lazy[*PostgresServer]
	cluster  lazy[*KubeCluster]
	// clone is the clone server of the rehearsal's clones (clone.go).
	clone lazy[*PostgresServer]
	// tools is the tools cache directory (PostgresTools), looked up once.
	tools lazy[string]
}

// lazy starts a server on first use; a failed start is remembered, not retried.
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (l *lazy[T]) get(start func() (T, error)) (T, error) {
	l.once.Do(func() { l.v, l.err = start() })
	return l.v, l.err
}

var shared world

// Main runs the tests and then stops whatever servers they started.
func Main(m *testing.M) {
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// stop runs after every test of the binary has finished.
func (w *world) stop() {
	if c := w.cluster.v; c != nil {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testworld: stop cluster: %v\n", err)
		}
	}
	if pg := w.postgres.v; pg != nil {
		if err := pg.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testworld: stop postgres: %v\n", err)
		}
	}
	if pg := w.clone.v; pg != nil {
		if err := pg.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testworld: stop the clone server: %v\n", err)
		}
	}
	w.majorsMu.Lock()
	defer w.majorsMu.Unlock()
	for major, l := range w.majors {
		if pg := l.v; pg != nil {
			if err := pg.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "testworld: stop postgres %d: %v\n", major, err)
			}
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
