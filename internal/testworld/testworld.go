// Package testworld starts the real parts the tests run against: a PostgreSQL server and a
// simulated Kubernetes cluster (kube-apiserver, etcd, controller-manager and scheduler with kwok
// nodes). Each is started once per test binary, on loopback only, and torn down when the binary
// ends; each test gets its own database or namespace.
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
	mu       sync.Mutex
	postgres *PostgresServer
	pgErr    error
	cluster  *KubeCluster
	kubeErr  error
}

var shared world

// Main runs the tests and then stops whatever servers they started.
func Main(m *testing.M) {
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

func (w *world) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cluster != nil {
		if err := w.cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testworld: stop cluster: %v\n", err)
		}
		w.cluster = nil
	}
	if w.postgres != nil {
		if err := w.postgres.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testworld: stop postgres: %v\n", err)
		}
		w.postgres = nil
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
