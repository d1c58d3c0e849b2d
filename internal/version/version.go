// Package version reports the version of the identity-upgrade binary.
//
// Release builds set it at link time:
//
//	go build -ldflags "-X github.com/identity-upgrade/identity-upgrade/internal/version.version=v1.2.3"
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at link time with -ldflags -X; it is never assigned at run time.
var version = "dev"

// Version returns the version the binary was built as ("dev" when not set at link time).
func Version() string { return version }

// String returns a one-line description: version, VCS revision when known, Go version and platform.
func String() string {
	v := version
	if rev := revision(); rev != "" {
		v += " (" + rev + ")"
	}
	return fmt.Sprintf("identity-upgrade %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// revision returns the short VCS revision recorded by the Go toolchain, if any.
func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
