package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
)

// The bundles, comparisons and memory probe the tests of both stores use.

// testBundle writes a bundle directory dir/name by hand: a dump of dumpSize pseudo-random
// bytes, two release files and a manifest consistent with them.
func testBundle(t testing.TB, dir, name string, dumpSize int64, seed uint64) *bundle.Bundle {
	t.Helper()
	bdir := filepath.Join(dir, name)
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	const dumpFile = "dump.pgcustom.zst"
	sum, err := writeRandom(filepath.Join(bdir, dumpFile), dumpSize, seed)
	if err != nil {
		t.Fatal(err)
	}
	var parts []bundle.Part
	for _, src := range []bundle.Source{
		bundle.Bytes(bundle.PartReleaseValues, bundle.ReleaseValuesFile, []byte("keycloak:\n  replicas: 2\n")),
		bundle.Bytes(bundle.PartReleaseManifest, bundle.ReleaseManifestFile, []byte("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: keycloak\n")),
	} {
		p, err := bundle.WritePart(context.Background(), bdir, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	m := bundle.Manifest{
		FormatVersion: bundle.ManifestVersion,
		CreatedAt:     time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		ServerVersion: "15.8",
		PgDumpVersion: "15.8",
		Database:      "keycloak",
		DumpFormat:    bundle.FormatCustom,
		DumpFile:      dumpFile,
		Compression:   "zstd",
		Encryption:    "none",
		SHA256:        sum,
		SizeBytes:     dumpSize,
		RowCounts:     map[string]int64{"realm": 2, "user_entity": 40},
		Schema:        bundle.ManifestSchema{ChangelogRows: 120, LatestChangeID: "24.0.0-9999"},
		Release:       "keycloak",
		Revision:      7,
		ChartVersion:  "1.3.2",
		Parts:         parts,
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, bundle.ManifestFile), append(data, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(bdir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRandom writes size bytes of a fast PRNG stream to path and returns their sha256.
func writeRandom(path string, size int64, seed uint64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		n := int64(len(buf))
		if left < n {
			n = left
		}
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return "", err
		}
		left -= n
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// fileSums returns the sha256 of every file in dir, by name.
func fileSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, e := range entries {
		sums[e.Name()] = fileSHA(t, filepath.Join(dir, e.Name()))
	}
	return sums
}

// fileSHA is the sha256 of a file, in hex.
func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameBundle fails unless got holds exactly the files of want, byte for byte, under the same
// name and with the same manifest.
func sameBundle(t *testing.T, want, got *bundle.Bundle) {
	t.Helper()
	ws, gs := fileSums(t, want.Dir), fileSums(t, got.Dir)
	if !reflect.DeepEqual(ws, gs) {
		t.Errorf("opened bundle has files %v, want %v", gs, ws)
	}
	if got.Name() != want.Name() {
		t.Errorf("opened bundle is named %q, want %q", got.Name(), want.Name())
	}
	if !reflect.DeepEqual(got.Manifest, want.Manifest) {
		t.Errorf("opened manifest differs:\n got %+v\nwant %+v", got.Manifest, want.Manifest)
	}
}

// heapGrowth samples HeapInuse every 2 ms until stop, which returns the largest growth
// over the HeapInuse at the start (after a GC).
func heapGrowth() func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}
