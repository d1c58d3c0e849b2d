//go:build !unix

package bundle

import "os"

// fileOwnerOf tells no owner where files have no numeric owner.
func fileOwnerOf(os.FileInfo) (FileOwner, bool) { return FileOwner{}, false }
