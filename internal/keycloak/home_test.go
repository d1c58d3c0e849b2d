package keycloak

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
)

// zipHome writes a ZIP installation's Keycloak home: Keycloak's own parts, and the operator's
// (a custom theme, a provider, an edited standalone.xml, a JDBC driver's module, the realm
// file). It returns the operator's files by path.
func zipHome(t testing.TB, home string) map[string]string {
	t.Helper()
	own := map[string]string{
		"standalone/configuration/standalone_xml_history/standalone.initial.xml": "<server/>",
		"standalone/deployments/acme-provider.jar.deployed":                      "",
		"modules/system/layers/keycloak/org/keycloak/main/module.xml":            "<module/>",
		"themes/base/login/template.ftl":                                         "<#macro/>",
		"themes/keycloak/login/theme.properties":                                 "parent=base",
		"themes/alfresco/login/theme.properties":                                 "parent=keycloak",
		"bin/standalone.sh":                                                      "#!/bin/sh",
	}
	custom := map[string]string{
		"standalone/configuration/standalone.xml":       "<server><!-- edited: proxy-address-forwarding --></server>",
		"standalone/configuration/logging.properties":   "logger.level=INFO",
		"standalone/deployments/acme-provider.jar":      "PK\x03\x04provider",
		"modules/org/postgresql/main/module.xml":        "<module name=\"org.postgresql\"/>",
		"modules/org/postgresql/main/postgresql-42.jar": "PK\x03\x04jdbc",
		"themes/acme/login/theme.properties":            "parent=keycloak",
		"themes/acme/login/resources/css/login.css":     "body { color: #123 }",
		"realm/alfresco-realm.json":                     `{"realm":"alfresco"}`,
	}
	for _, files := range []map[string]string{own, custom} {
		for p, data := range files {
			full := filepath.Join(home, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return custom
}

// TestSaveHome: the operator's parts of a ZIP home are saved laid out as in the home,
// Keycloak's own are not; a directory that is not a Keycloak home is refused.
func TestSaveHome(t *testing.T) {
	home := t.TempDir()
	custom := zipHome(t, home)
	dir := filepath.Join(t.TempDir(), "c")
	saved, err := SaveHome(t.Context(), home, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %v", saved.Saved)
	got := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != bundle.CustomizationsIndexFile {
			data, _ := os.ReadFile(p)
			got[filepath.ToSlash(rel)] = string(data)
		}
		return nil
	})
	for p, want := range custom {
		if got[p] != want {
			t.Errorf("%s = %q, want %q", p, got[p], want)
		}
	}
	if len(got) != len(custom) {
		t.Errorf("saved %d files, want %d: %v", len(got), len(custom), got)
	}
	idx, err := bundle.ReadCustomizationsIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Source != bundle.SourceHome || len(idx.Items) != 5 {
		t.Errorf("index %+v", idx)
	}
	if _, err := SaveHome(t.Context(), t.TempDir(), filepath.Join(t.TempDir(), "c")); !errors.Is(err, ErrNotKeycloakHome) {
		t.Errorf("SaveHome of an empty directory = %v, want ErrNotKeycloakHome", err)
	}
}
