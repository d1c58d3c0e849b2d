package testworld

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// ChartRepo serves the test charts of testdata/charts/identity (every version directory) as a
// Helm chart repository on 127.0.0.1: index.yaml and one .tgz per version, packaged as helm
// package lays them out (a top directory named after the chart). It stands for the vendor's
// repository (https://kubernetes-charts.alfresco.com/stable) in tests that run the README's
// examples. It returns the repository's URL.
func ChartRepo(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(root, "testdata", "charts", "identity")
	versions, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	type entry struct {
		APIVersion  string    `json:"apiVersion"`
		Name        string    `json:"name"`
		Version     string    `json:"version"`
		AppVersion  string    `json:"appVersion,omitempty"`
		Description string    `json:"description,omitempty"`
		Type        string    `json:"type,omitempty"`
		URLs        []string  `json:"urls"`
		Digest      string    `json:"digest"`
		Created     time.Time `json:"created"`
	}
	entries := map[string][]entry{}
	for _, v := range versions {
		if !v.IsDir() {
			continue
		}
		dir := filepath.Join(base, v.Name())
		var meta entry
		data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &meta); err != nil {
			t.Fatalf("%s/Chart.yaml: %v", dir, err)
		}
		tgz, err := packageChart(dir, meta.Name)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s-%s.tgz", meta.Name, meta.Version)
		files["/"+name] = tgz
		sum := sha256.Sum256(tgz)
		meta.URLs, meta.Digest, meta.Created = []string{name}, hex.EncodeToString(sum[:]), time.Now().UTC()
		entries[meta.Name] = append(entries[meta.Name], meta)
	}
	index, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "entries": entries, "generated": time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	files["/index.yaml"] = index
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// packageChart makes a chart archive of dir: a gzipped tar whose entries sit under name/.
func packageChart(dir, name string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name + "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("package chart %s: %w", strings.TrimPrefix(dir, "/"), err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
