package keycloak

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// listThemesScript prints the absolute path of Keycloak's themes directory in the container,
// then the name of each directory in it, one a line. Keycloak's home is JBOSS_HOME, which the
// images of Keycloak up to 16 set (/opt/jboss/keycloak), else /opt/keycloak (Keycloak 17 on).
// It prints nothing when there is no themes directory.
const listThemesScript = `home=${JBOSS_HOME:-}
if [ -z "$home" ]; then
  for d in /opt/jboss/keycloak /opt/keycloak; do
    if [ -d "$d/themes" ]; then home=$d; break; fi
  done
fi
cd "${home:-/opt/jboss/keycloak}/themes" 2>/dev/null || exit 0
pwd
for f in *; do
  if [ -d "$f" ] && [ ! -L "$f" ]; then printf '%s\n' "$f"; fi
done`

// saveThemes saves the theme directories of the running pods that are neither Keycloak's nor
// the image's own, each once (from the first pod that has it), and notes the origin of every
// theme it sees, saved or mounted.
func (c Customizations) saveThemes(ctx context.Context, namespace string, pods []corev1.Pod, col *collection) error {
	if len(pods) == 0 {
		col.warn("themes not read: no Keycloak pod is running")
		return nil
	}
	x := podExec{Client: c.Client, Config: c.Config}
	taken := map[string]bool{}
	for _, p := range pods {
		container := keycloakContainer(p.Spec.Containers)
		image := ""
		for _, ctr := range p.Spec.Containers {
			if ctr.Name == container {
				image = ctr.Image
			}
		}
		mounts := themeMounts(p.Spec, container)
		for name, origin := range mounts {
			if _, ok := col.origins[name]; !ok {
				col.origins[name] = origin
			}
		}
		pt, err := c.listThemes(ctx, x, namespace, p, container)
		if err != nil {
			col.warn("%v", err)
			continue
		}
		var want []string
		for _, name := range pt.names {
			if !taken[name] && !slices.Contains(ownThemes(image), name) {
				want = append(want, name)
			}
		}
		for name := range mounts {
			if !slices.Contains(pt.names, name) {
				col.warn("theme %s (%s) is not in pod %s's themes directory %s: not saved", name, mounts[name], p.Name, pt.dir)
			}
		}
		if len(want) == 0 {
			continue
		}
		newest, err := c.readThemes(ctx, x, namespace, pt, want, col)
		if errors.Is(err, errNoThemes) {
			continue
		}
		if err != nil {
			return err
		}
		for _, name := range want {
			origin := pt.themeOrigin(name, newest[name], mounts)
			col.origins[name] = origin
			taken[name] = true
			col.index.Items = append(col.index.Items, bundle.CustomizationItem{Kind: bundle.ItemTheme, Name: name, Path: themesDir + "/" + name, Origin: origin})
			c.log().Info("theme saved", "theme", name, "pod", p.Name, "origin", origin)
		}
	}
	return nil
}

// listThemes finds the themes directory of a pod's Keycloak container and what it holds.
func (c Customizations) listThemes(ctx context.Context, x podExec, namespace string, p corev1.Pod, container string) (podThemes, error) {
	pt := podThemes{pod: p, container: container}
	cmd := []string{"sh", "-c", listThemesScript}
	where := fmt.Sprintf("pod %s/%s container %s", namespace, p.Name, container)
	var stdout, stderr bytes.Buffer
	if err := x.run(ctx, namespace, p.Name, container, cmd, &stdout, &stderr); err != nil {
		return pt, fmt.Errorf("themes of %s not read: `sh -c <list the themes directory>`: %w%s (pod exec needs the pods/exec permission, and the image a shell)",
			where, err, stderrNote(stderr.String()))
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	if stdout.Len() == 0 {
		return pt, fmt.Errorf("themes of %s not read: Keycloak's themes directory is not there (JBOSS_HOME/themes, /opt/jboss/keycloak/themes, /opt/keycloak/themes)", where)
	}
	if !path.IsAbs(lines[0]) {
		return pt, fmt.Errorf("themes of %s not read: listing the themes directory printed %q, not its path", where, truncate(stdout.String(), 200))
	}
	pt.dir = lines[0]
	for _, name := range lines[1:] {
		if name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00") {
			pt.names = append(pt.names, name)
		}
	}
	return pt, nil
}

// readThemes streams the named theme directories of a pod through `tar -c` over the exec
// stream into the collection, at most MaxThemeBytes, logging the progress, and returns the
// newest file time of each. Themes it could not read whole are removed again and warned
// about (errNoThemes).
func (c Customizations) readThemes(ctx context.Context, x podExec, namespace string, pt podThemes, names []string, col *collection) (map[string]metav1.Time, error) {
	limit := c.MaxThemeBytes
	if limit <= 0 {
		limit = DefaultMaxThemeBytes
	}
	where := fmt.Sprintf("pod %s/%s container %s", namespace, pt.pod.Name, pt.container)
	cmd := append([]string{"tar", "-cf", "-", "-C", pt.dir, "--"}, names...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := x.run(ctx, namespace, pt.pod.Name, pt.container, cmd, pw, &stderr)
		pw.CloseWithError(err)
		done <- err
	}()
	meter := progress.Start(ctx, c.Log, "themes progress", progress.Options{Attrs: []any{"pod", pt.pod.Name, "themes", strings.Join(names, ",")}})
	newest := map[string]metav1.Time{}
	written, readErr := c.untarThemes(meter.Reader(pr), names, limit, col.dir, newest)
	if readErr == nil {
		// tar pads its archive past the end marker: read the rest, so that tar ends.
		_, readErr = io.Copy(io.Discard, pr)
	}
	meter.Stop()
	if readErr != nil {
		// Stop tar, and read what is still on its way until the stream ends.
		cancel()
		io.Copy(io.Discard, pr)
	}
	execErr := <-done
	fail := func(why string) (map[string]metav1.Time, error) {
		for _, name := range names {
			os.RemoveAll(filepath.Join(col.dir, themesDir, name))
		}
		col.warn("themes %s of %s not saved: %s", strings.Join(names, ", "), where, why)
		return nil, errNoThemes
	}
	switch {
	case errors.Is(readErr, errTooLarge):
		return fail(fmt.Sprintf("they exceed %s, the most read of a pod's themes: copy them out by hand", progress.Bytes(limit)))
	case readErr != nil:
		// This run stopped the command: its error says nothing more.
		return fail(fmt.Sprintf("the tar stream did not read: %v%s", readErr, stderrNote(stderr.String())))
	case execErr != nil:
		return fail(execFailure("read the themes", where, cmd, execErr, stderr.String()).Error() + " (is tar in the image?)")
	}
	c.log().Info("themes read", "pod", pt.pod.Name, "themes", len(names), "bytes", written)
	return newest, nil
}

// stderrNote is the end of a command's stderr, for an error, or "".
func stderrNote(stderr string) string {
	if t := lastBytes(stderr, stderrTail); t != "" {
		return "; stderr: " + t
	}
	return ""
}

// errTooLarge marks themes over the cap.
var errTooLarge = errors.New("over the size cap")

// untarThemes writes the tar stream's files below dir/themes, each under one of names, and
// records the newest time of each theme's files. Links and special files are left out: a
// theme is files.
func (c Customizations) untarThemes(r io.Reader, names []string, limit int64, dir string, newest map[string]metav1.Time) (int64, error) {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		top, _, _ := strings.Cut(name, "/")
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || !slices.Contains(names, top) {
			return total, fmt.Errorf("the stream holds %q, outside the themes asked for", h.Name)
		}
		dst := filepath.Join(dir, themesDir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return total, err
			}
		case tar.TypeReg:
			if total += h.Size; total > limit {
				return total, errTooLarge
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return total, err
			}
			if err := bundle.WriteFile(context.Background(), dst, tr); err != nil {
				return total, fmt.Errorf("write %s: %w", dst, err)
			}
			if err := os.Chtimes(dst, h.ModTime, h.ModTime); err != nil {
				return total, err
			}
			if t := newest[top]; h.ModTime.After(t.Time) {
				newest[top] = metav1.NewTime(h.ModTime)
			}
		}
	}
}
