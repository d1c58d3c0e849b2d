package testworld

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestStaleDirsAreThoseOfDeadOwners(t *testing.T) {
	prefix := "testworld-reaptest-" + strconv.Itoa(os.Getpid()) + "-"
	mk := func(pid int) string {
		dir, err := os.MkdirTemp("", prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if pid != 0 {
			os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(pid)), 0o644)
		}
		return dir
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	alive, gone, unowned := mk(os.Getpid()), mk(dead.Process.Pid), mk(0)

	stale := staleDirs(prefix)
	if !slices.Contains(stale, gone) || slices.Contains(stale, alive) || slices.Contains(stale, unowned) {
		t.Fatalf("stale = %v; want only %s (owner gone), not %s (alive) or %s (no owner file)", stale, gone, alive, unowned)
	}
	reapStaleDirs(prefix)
	for dir, want := range map[string]bool{alive: true, gone: false, unowned: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s exists = %v after reaping, want %v", dir, err == nil, want)
		}
	}
}
