package keycloak

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// ErrNotKeycloakHome marks a keycloak-home that is not a Keycloak installation's directory.
var ErrNotKeycloakHome = errors.New("not a Keycloak home")

// deploymentMarkers are the files WildFly writes beside a deployment to say its state; they
// are not the operator's.
var deploymentMarkers = []string{".deployed", ".failed", ".isdeploying", ".isundeploying", ".pending", ".undeployed", ".dodeploy", ".skipdeploy"}

// SaveHome collects the customizations of a ZIP installation (the vendor's "back up any
// customizations") from its Keycloak home into dir, laid out as in the home, so that
// restore's customizations-to gives a directory to copy into the new version's home:
//
//   - standalone/configuration (standalone.xml and the rest), without WildFly's history of it;
//   - standalone/deployments (providers), without WildFly's deployment markers;
//   - modules, without modules/system (Keycloak's own): a JDBC driver's module, for one;
//   - themes, without Keycloak's own and the Identity Service's (alfresco);
//   - realm (the realm file the Identity Service imports).
//
// A part that is not there is noted; a home without standalone/configuration is refused
// (ErrNotKeycloakHome).
func SaveHome(ctx context.Context, home, dir string) (rollout.Customizations, error) {
	out := rollout.Customizations{Dir: dir, ThemeCheckSkipped: "a ZIP installation is upgraded by hand"}
	if st, err := os.Stat(filepath.Join(home, "standalone", "configuration")); err != nil || !st.IsDir() {
		return out, fmt.Errorf("keycloak-home %s: %w: it has no standalone/configuration directory", home, ErrNotKeycloakHome)
	}
	idx := bundle.Customizations{Source: bundle.SourceHome}
	add := func(kind, rel, origin string, skip func(rel string, d fs.DirEntry) bool) error {
		src := filepath.Join(home, filepath.FromSlash(rel))
		st, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			idx.Notes = append(idx.Notes, rel+": not in the Keycloak home")
			return nil
		}
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("keycloak-home %s: %s is not a directory", home, rel)
		}
		name := rel
		if kind == bundle.ItemTheme {
			name = filepath.Base(rel)
		}
		idx.Items = append(idx.Items, bundle.CustomizationItem{Kind: kind, Name: name, Path: rel, Origin: origin})
		return copyTree(ctx, src, filepath.Join(dir, filepath.FromSlash(rel)), func(r string, d fs.DirEntry) bool {
			return skip != nil && skip(r, d)
		}, &idx)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return out, err
	}
	if err := add(bundle.ItemHome, "standalone/configuration", "the Keycloak home", func(rel string, d fs.DirEntry) bool {
		return d.IsDir() && rel == "standalone_xml_history"
	}); err != nil {
		return out, err
	}
	if err := add(bundle.ItemHome, "standalone/deployments", "the Keycloak home", func(rel string, d fs.DirEntry) bool {
		return !d.IsDir() && slices.ContainsFunc(deploymentMarkers, func(m string) bool { return strings.HasSuffix(d.Name(), m) })
	}); err != nil {
		return out, err
	}
	modules, err := os.ReadDir(filepath.Join(home, "modules"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return out, err
	}
	for _, m := range modules {
		if m.IsDir() && m.Name() != "system" {
			if err := add(bundle.ItemHome, "modules/"+m.Name(), "a module added to the Keycloak home", nil); err != nil {
				return out, err
			}
		}
	}
	themes, err := os.ReadDir(filepath.Join(home, "themes"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return out, err
	}
	for _, t := range themes {
		if t.IsDir() && !slices.Contains(ownThemes("alfresco-identity-service"), t.Name()) {
			if err := add(bundle.ItemTheme, "themes/"+t.Name(), "a theme added to the Keycloak home", nil); err != nil {
				return out, err
			}
		}
	}
	if err := add(bundle.ItemHome, "realm", "the Keycloak home", nil); err != nil {
		return out, err
	}
	if err := bundle.WriteCustomizationsIndex(dir, idx); err != nil {
		return out, err
	}
	out.Saved = Summary(idx)
	return out, nil
}

// copyTree copies the regular files and directories below src into dst, modes and times
// kept, leaving out what skip says (by path relative to src) and noting links and special
// files in idx.
func copyTree(ctx context.Context, src, dst string, skip func(rel string, d fs.DirEntry) bool, idx *bundle.Customizations) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && skip(filepath.ToSlash(rel), d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case !info.Mode().IsRegular():
			idx.Notes = append(idx.Notes, fmt.Sprintf("%s left out: not a regular file (%s)", p, info.Mode().Type()))
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		if err := bundle.WriteFile(ctx, target, in); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		if err := os.Chmod(target, info.Mode().Perm()|0o600); err != nil {
			return err
		}
		return os.Chtimes(target, info.ModTime(), info.ModTime())
	})
}
