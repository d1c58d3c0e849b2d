package testworld

import (
	"net"
	"os"
	"testing"
)

func TestParseProcAddr(t *testing.T) {
	tests := map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0016":                         "0.0.0.0:22",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"00000000000000000000000000000000:01BB": "[::]:443",
	}
	for in, want := range tests {
		got, err := parseProcAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
}

// TestListenAddressesSeesAWildcardListener makes sure the loopback check can fail: a socket
// this process binds to every address must be reported as such.
func TestListenAddressesSeesAWildcardListener(t *testing.T) {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	addrs, err := ListenAddresses([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if int(a.Port()) == port {
			if a.Addr().IsLoopback() || !a.Addr().IsUnspecified() {
				t.Errorf("wildcard listener reported as %s", a)
			}
			return
		}
	}
	t.Errorf("listener on port %d not found among %v", port, addrs)
}
