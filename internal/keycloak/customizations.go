package keycloak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var _ rollout.Customizer = Customizations{}

// Customizations saves what the release's Keycloak is configured with, before it is scaled
// down, and checks after the upgrade that the new Keycloak has the themes the realms name:
//
//   - every ConfigMap and Secret the Keycloak pods reference (volumes, projected volumes, env,
//     envFrom, image pull secrets), as YAML;
//   - through the admin API, when its inputs are given: every realm's partial export, and the
//     themes each realm names;
//   - the theme directories of a running Keycloak pod that are neither Keycloak's own nor the
//     image's, read through pod exec (tar over the exec stream), so that a theme copied into
//     the pod by hand is kept too.
//
// What cannot be read (no pod running, no exec permission, no tar in the image, the admin API
// inputs not given) is a warning that says why: the image still holds what it shipped, and the
// database backup holds the realms whole.
type Customizations struct {
	Client kubernetes.Interface
	// Config is the REST configuration exec connects with (the same cluster as Client).
	Config *rest.Config
	// Workload is the `workload` input, as Workloads.Name: "" detects the Keycloak workloads.
	Workload string
	// Dir is the directory Save collects into (in the run's working directory).
	Dir string
	// Admin is Keycloak's admin API; without its inputs there are no realm exports and no
	// theme check.
	Admin *Admin
	// MaxThemeBytes caps what is read of a pod's themes; 0 means DefaultMaxThemeBytes.
	MaxThemeBytes int64
	Log           *slog.Logger
}

// DefaultMaxThemeBytes is the most read of a pod's theme directories: a theme is templates,
// messages, styles and images, a few MiB.
const DefaultMaxThemeBytes = 256 << 20

// Paths in a collected customizations directory (and below restore's customizations-to).
const (
	configMapsDir   = "kubernetes/configmaps"
	secretsDir      = "kubernetes/secrets"
	realmExportsDir = "realm-exports"
	themesDir       = "themes"
)

// builtinThemes are Keycloak's own themes (up to 16 on WildFly); imageThemes those the images
// add, by the last path element of the image's repository.
var (
	builtinThemes = []string{"base", "keycloak", "keycloak.v2", "keycloak-preview"}
	imageThemes   = map[string][]string{"alfresco-identity-service": {"alfresco"}}
)

// MaskedExportNote is said of every realm export: Keycloak masks secrets in it.
const MaskedExportNote = "Keycloak masks the secrets in a partial export (client secrets read **********): it is for reading and diffing; the database backup holds the realm whole"

func (c Customizations) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// collection is a Save in progress.
type collection struct {
	dir      string
	index    bundle.Customizations
	warnings []string
	// origins are the saved themes' origins, by name.
	origins map[string]string
}

func (col *collection) warn(format string, args ...any) {
	col.warnings = append(col.warnings, fmt.Sprintf(format, args...))
}

// write writes a file of the collection at rel (slash-separated), for an item.
func (col *collection) write(rel string, data []byte, item bundle.CustomizationItem) error {
	p := filepath.Join(col.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	item.Path = rel
	col.index.Items = append(col.index.Items, item)
	return nil
}

// Save collects the customizations of the release (its Keycloak workloads found in manifest
// as Detect finds them) into Dir. Only a failure to write Dir is an error.
func (c Customizations) Save(ctx context.Context, namespace, manifest string) (rollout.Customizations, error) {
	dir := c.Dir
	out := rollout.Customizations{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return out, fmt.Errorf("save the customizations: %w", err)
	}
	col := &collection{dir: dir, index: bundle.Customizations{Source: bundle.SourceCluster}, origins: map[string]string{}}
	targets, err := Detect(manifest, c.Workload)
	if err != nil {
		col.warn("no Keycloak workload to read customizations of: %v", err)
	}
	var pods []corev1.Pod
	for _, t := range targets {
		spec, selector, err := c.podTemplate(ctx, namespace, t)
		if err != nil {
			col.warn("%v", err)
			continue
		}
		if err := c.saveReferenced(ctx, namespace, t, spec, col); err != nil {
			return out, err
		}
		list, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			col.warn("themes of %s/%s not read: list its pods: %v", t.Kind, t.Name, err)
			continue
		}
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
	}
	if len(targets) > 0 {
		if err := c.saveThemes(ctx, namespace, pods, col); err != nil {
			return out, err
		}
	}
	uses, err := c.saveRealms(ctx, col)
	if err != nil {
		return out, err
	}
	if !c.Admin.Configured() {
		out.ThemeCheckSkipped = "keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given: the realms' themes cannot be read"
	}
	col.index.ThemeUses = uses
	col.index.Notes = append(col.index.Notes, col.warnings...)
	if err := bundle.WriteCustomizationsIndex(dir, col.index); err != nil {
		return out, fmt.Errorf("save the customizations: %w", err)
	}
	for _, w := range col.warnings {
		c.log().Warn("customization not saved", "why", w)
	}
	out.Saved = Summary(col.index)
	out.Warnings = col.warnings
	for _, u := range uses {
		out.Themes = append(out.Themes, rollout.ThemeUse{Realm: u.Realm, Kind: u.Kind, Theme: u.Theme, Origin: u.Origin})
	}
	return out, nil
}

// Summary lists what an index holds by kind, for reports: names, no content.
func Summary(idx bundle.Customizations) []rollout.Saved {
	var out []rollout.Saved
	for _, k := range []struct{ kind, label string }{
		{bundle.ItemConfigMap, "ConfigMaps"}, {bundle.ItemSecret, "Secrets"}, {bundle.ItemRealmExport, "realm exports"},
		{bundle.ItemTheme, "themes"}, {bundle.ItemHome, "Keycloak home directories"},
	} {
		if n, names := idx.Count(k.kind); n > 0 {
			out = append(out, rollout.Saved{Kind: k.label, Names: names})
		}
	}
	return out
}

// podTemplate reads the live workload's pod template and its selector.
func (c Customizations) podTemplate(ctx context.Context, namespace string, t rollout.Scaled) (corev1.PodSpec, string, error) {
	var tmpl corev1.PodTemplateSpec
	var sel *metav1.LabelSelector
	switch t.Kind {
	case StatefulSet:
		o, err := c.Client.AppsV1().StatefulSets(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return corev1.PodSpec{}, "", fmt.Errorf("customizations of %s/%s not read: %w", t.Kind, t.Name, err)
		}
		tmpl, sel = o.Spec.Template, o.Spec.Selector
	case Deployment:
		o, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return corev1.PodSpec{}, "", fmt.Errorf("customizations of %s/%s not read: %w", t.Kind, t.Name, err)
		}
		tmpl, sel = o.Spec.Template, o.Spec.Selector
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return tmpl.Spec, "", fmt.Errorf("customizations of %s/%s not read: no usable pod selector (%v)", t.Kind, t.Name, err)
	}
	return tmpl.Spec, s.String(), nil
}

// reference is a ConfigMap or Secret a pod spec references, and where.
type reference struct {
	kind, name, field string
	optional          bool
}

// references lists the ConfigMaps and Secrets a pod spec references, each once, in the
// order found.
func references(spec corev1.PodSpec) []reference {
	var out []reference
	seen := map[string]bool{}
	add := func(kind, name, field string, optional *bool) {
		if name == "" || seen[kind+"/"+name] {
			return
		}
		seen[kind+"/"+name] = true
		out = append(out, reference{kind: kind, name: name, field: field, optional: optional != nil && *optional})
	}
	for _, s := range spec.ImagePullSecrets {
		add(bundle.ItemSecret, s.Name, "imagePullSecrets", nil)
	}
	for _, v := range spec.Volumes {
		where := "volume " + v.Name
		if v.ConfigMap != nil {
			add(bundle.ItemConfigMap, v.ConfigMap.Name, where, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			add(bundle.ItemSecret, v.Secret.SecretName, where, v.Secret.Optional)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					add(bundle.ItemConfigMap, src.ConfigMap.Name, where, src.ConfigMap.Optional)
				}
				if src.Secret != nil {
					add(bundle.ItemSecret, src.Secret.Name, where, src.Secret.Optional)
				}
			}
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, ctr := range cs {
			where := "container " + ctr.Name
			for _, e := range ctr.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					add(bundle.ItemConfigMap, r.Name, where+" env "+e.Name, r.Optional)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					add(bundle.ItemSecret, r.Name, where+" env "+e.Name, r.Optional)
				}
			}
			for _, e := range ctr.EnvFrom {
				if e.ConfigMapRef != nil {
					add(bundle.ItemConfigMap, e.ConfigMapRef.Name, where+" envFrom", e.ConfigMapRef.Optional)
				}
				if e.SecretRef != nil {
					add(bundle.ItemSecret, e.SecretRef.Name, where+" envFrom", e.SecretRef.Optional)
				}
			}
		}
	}
	return out
}

// saveReferenced writes every ConfigMap and Secret the workload's pods reference, as YAML
// without the server's bookkeeping (managed fields, uid, resource version, the last-applied
// annotation, which would repeat the data).
func (c Customizations) saveReferenced(ctx context.Context, namespace string, t rollout.Scaled, spec corev1.PodSpec, col *collection) error {
	for _, r := range references(spec) {
		var obj map[string]any
		var err error
		switch r.kind {
		case bundle.ItemConfigMap:
			var cm *corev1.ConfigMap
			if cm, err = c.Client.CoreV1().ConfigMaps(namespace).Get(ctx, r.name, metav1.GetOptions{}); err == nil {
				obj = map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(cm.ObjectMeta), "data": cm.Data, "binaryData": cm.BinaryData}
			}
		case bundle.ItemSecret:
			var s *corev1.Secret
			if s, err = c.Client.CoreV1().Secrets(namespace).Get(ctx, r.name, metav1.GetOptions{}); err == nil {
				obj = map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta(s.ObjectMeta), "type": s.Type, "data": s.Data}
			}
		}
		what := fmt.Sprintf("%s %s (%s of %s/%s)", r.kind, r.name, r.field, t.Kind, t.Name)
		switch {
		case apierrors.IsNotFound(err) && r.optional:
			col.index.Notes = append(col.index.Notes, what+": optional, and not there")
			continue
		case err != nil:
			col.warn("%s not saved: %v", what, err)
			continue
		}
		for k, v := range obj {
			if v == nil {
				delete(obj, k)
			}
		}
		data, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("save %s: %w", what, err)
		}
		dir := configMapsDir
		if r.kind == bundle.ItemSecret {
			dir = secretsDir
		}
		item := bundle.CustomizationItem{Kind: r.kind, Name: r.name, Origin: r.field + " of " + t.Kind + "/" + t.Name}
		if err := col.write(dir+"/"+fileName(r.name)+".yaml", data, item); err != nil {
			return fmt.Errorf("save %s: %w", what, err)
		}
	}
	return nil
}

// meta keeps what of an object's metadata an operator re-creates it with.
func meta(m metav1.ObjectMeta) map[string]any {
	out := map[string]any{"name": m.Name, "namespace": m.Namespace}
	if len(m.Labels) > 0 {
		out["labels"] = m.Labels
	}
	ann := map[string]string{}
	for k, v := range m.Annotations {
		if k != corev1.LastAppliedConfigAnnotation {
			ann[k] = v
		}
	}
	if len(ann) > 0 {
		out["annotations"] = ann
	}
	return out
}

// fileName makes a name (of a realm, a ConfigMap) a file name.
func fileName(name string) string {
	name = url.PathEscape(name)
	if name == "." || name == ".." || strings.HasPrefix(name, ".") {
		name = "%2E" + name[1:]
	}
	return name
}

// saveRealms exports every realm through the admin API and returns the themes the realms
// name, each with its origin: the theme saved from the pod, Keycloak's or the image's own,
// or not found.
func (c Customizations) saveRealms(ctx context.Context, col *collection) ([]bundle.ThemeUse, error) {
	if !c.Admin.Configured() {
		col.index.Notes = append(col.index.Notes, "no realm exports: keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given")
		return nil, nil
	}
	realms, err := c.Admin.Realms(ctx)
	if err != nil {
		col.warn("realms not exported, and their themes not known: %v", err)
		return nil, nil
	}
	var uses []bundle.ThemeUse
	for _, r := range realms {
		export, err := c.Admin.PartialExport(ctx, r.Name)
		if err != nil {
			col.warn("%v", err)
		} else {
			item := bundle.CustomizationItem{Kind: bundle.ItemRealmExport, Name: r.Name, Origin: "admin API partial export", Note: MaskedExportNote}
			if err := col.write(realmExportsDir+"/"+fileName(r.Name)+".json", export, item); err != nil {
				return nil, fmt.Errorf("save the export of realm %q: %w", r.Name, err)
			}
			c.log().Info("realm exported", "realm", r.Name, "bytes", len(export))
		}
		for _, use := range r.Themes() {
			kind, theme := use.Kind, use.Theme
			origin, saved := col.origins[theme]
			switch {
			case saved:
			case slices.Contains(builtinThemes, theme):
				origin = "Keycloak's own"
			default:
				origin = "not found in the running Keycloak pod's themes directory (a provider's, or Keycloak already lacks it)"
			}
			uses = append(uses, bundle.ThemeUse{Realm: r.Name, Kind: kind, Theme: theme, Origin: origin})
		}
	}
	return uses, nil
}

// themeMounts returns, for a Keycloak container, the themes that volumes are mounted on
// (a mount path .../themes/<name>) and where each comes from: the init container that writes
// the volume (the vendor's way to bring a theme), or the volume.
func themeMounts(spec corev1.PodSpec, container string) map[string]string {
	out := map[string]string{}
	for _, ctr := range spec.Containers {
		if ctr.Name != container {
			continue
		}
		for _, m := range ctr.VolumeMounts {
			dir, name := path.Split(path.Clean(m.MountPath))
			if path.Base(dir) != "themes" || name == "" {
				continue
			}
			origin := "volume " + m.Name
			for _, ic := range spec.InitContainers {
				if slices.ContainsFunc(ic.VolumeMounts, func(im corev1.VolumeMount) bool { return im.Name == m.Name }) {
					origin = fmt.Sprintf("init container %s (image %s)", ic.Name, ic.Image)
					break
				}
			}
			out[name] = origin
		}
	}
	return out
}

// ownThemes are the themes Keycloak and the image bring, which are not saved.
func ownThemes(image string) []string {
	return append(slices.Clone(builtinThemes), imageThemes[manifest.ImageName(image)]...)
}

// errNoThemes marks a pod whose themes could not be read; the warning says why.
var errNoThemes = errors.New("themes not read")

// podThemes is what one pod's themes directory holds.
type podThemes struct {
	pod       corev1.Pod
	container string
	dir       string   // the themes directory, absolute
	names     []string // its directories
}

// themeOrigin names where a theme of the pod comes from: a volume (an init container), the
// image, or a copy by hand into the running container (its files newer than the container's
// start).
func (pt podThemes) themeOrigin(name string, newest metav1.Time, mounts map[string]string) string {
	if o, ok := mounts[name]; ok {
		return o
	}
	image := ""
	for _, ctr := range pt.pod.Spec.Containers {
		if ctr.Name == pt.container {
			image = ctr.Image
		}
	}
	for _, st := range pt.pod.Status.ContainerStatuses {
		if st.Name == pt.container && st.State.Running != nil && !newest.IsZero() && newest.After(st.State.Running.StartedAt.Time) {
			return fmt.Sprintf("copied into pod %s by hand after its container started (lost at its next restart)", pt.pod.Name)
		}
	}
	if image == "" {
		return "the image"
	}
	return "the image " + image
}

// CheckThemes reads, through the admin API, the themes the running (upgraded) Keycloak has
// (serverinfo) and the themes the realms name, and returns those it lacks, each with where it
// came from before the upgrade (saved.Themes). Without the admin API inputs it is skipped.
func (c Customizations) CheckThemes(ctx context.Context, saved rollout.Customizations) (rollout.ThemeCheck, error) {
	if !c.Admin.Configured() {
		return rollout.ThemeCheck{Skipped: "keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given"}, nil
	}
	info, err := c.Admin.ServerInfo(ctx)
	if err != nil {
		return rollout.ThemeCheck{}, fmt.Errorf("theme check: %w", err)
	}
	realms, err := c.Admin.Realms(ctx)
	if err != nil {
		return rollout.ThemeCheck{}, fmt.Errorf("theme check: %w", err)
	}
	origins := map[string]string{}
	for _, u := range saved.Themes {
		origins[u.Theme] = u.Origin
	}
	return themeCheck(info, realms, origins), nil
}

// themeCheck finds the themes the realms name that the Keycloak of info lacks; origins says
// where each theme came from before the upgrade.
func themeCheck(info ServerInfo, realms []Realm, origins map[string]string) rollout.ThemeCheck {
	check := rollout.ThemeCheck{Version: info.Version}
	for _, r := range realms {
		for _, use := range r.Themes() {
			kind, theme := use.Kind, use.Theme
			check.Checked++
			if !info.Has(kind, theme) {
				origin := origins[theme]
				if origin == "" {
					origin = "not known from before the upgrade"
				}
				check.Missing = append(check.Missing, rollout.ThemeUse{Realm: r.Name, Kind: kind, Theme: theme, Origin: origin})
			}
		}
	}
	return check
}

// revisionThemes are what a revision's manifest says of its Keycloak's themes: those volumes
// are mounted on (an init container's), with their origin, and the image's own.
type revisionThemes struct {
	mounted map[string]string
	image   string
}

// manifestThemes reads the themes of the Keycloak workloads of a manifest from their pod
// templates.
func (c Customizations) manifestThemes(m string) (revisionThemes, error) {
	out := revisionThemes{mounted: map[string]string{}}
	targets, err := Detect(m, c.Workload)
	if err != nil {
		return out, err
	}
	objs, err := manifest.Objects(m)
	if err != nil {
		return out, err
	}
	for _, o := range objs {
		if !slices.ContainsFunc(targets, func(t rollout.Scaled) bool { return t.Kind == o.GetKind() && t.Name == o.GetName() }) {
			continue
		}
		raw, found, _ := unstructured.NestedMap(o.Object, "spec", "template")
		if !found {
			continue
		}
		var tmpl corev1.PodTemplateSpec
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
			return out, fmt.Errorf("read %s/%s of the manifest: %w", o.GetKind(), o.GetName(), err)
		}
		container := keycloakContainer(tmpl.Spec.Containers)
		for name, origin := range themeMounts(tmpl.Spec, container) {
			out.mounted[name] = origin
		}
		for _, ctr := range tmpl.Spec.Containers {
			if ctr.Name == container && out.image == "" {
				out.image = ctr.Image
			}
		}
	}
	return out, nil
}

// PlanThemes says which themes the realms name (through the admin API) and which of them the
// target would not have: a theme that an init container of the current revision brings and
// that no volume of the target's Keycloak is mounted on (the init container dropped by the
// target's values).
func (c Customizations) PlanThemes(ctx context.Context, namespace string, current, target rollout.Release) (rollout.ThemePlan, error) {
	var tp rollout.ThemePlan
	cur, err := c.manifestThemes(current.Manifest)
	if err != nil {
		return tp, fmt.Errorf("the themes of revision %d: %w", current.Revision, err)
	}
	tgt, err := c.manifestThemes(target.Manifest)
	if err != nil {
		return tp, fmt.Errorf("the themes of the target: %w", err)
	}
	for name := range cur.mounted {
		if _, ok := tgt.mounted[name]; !ok {
			tp.Dropped = append(tp.Dropped, name)
		}
	}
	slices.Sort(tp.Dropped)
	if !c.Admin.Configured() {
		tp.Skipped = "keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given"
		return tp, nil
	}
	realms, err := c.Admin.Realms(ctx)
	if err != nil {
		return tp, err
	}
	for _, r := range realms {
		for _, use := range r.Themes() {
			kind, theme := use.Kind, use.Theme
			origin, mounted := cur.mounted[theme]
			switch {
			case mounted:
				origin += fmt.Sprintf(" of revision %d", current.Revision)
			case slices.Contains(builtinThemes, theme):
				origin = "Keycloak's own"
			case slices.Contains(ownThemes(cur.image), theme):
				origin = "the image " + cur.image
			default:
				origin = "not in the manifest (a custom image's, a copy by hand or a provider's): the theme check after the upgrade tells"
			}
			u := rollout.ThemeUse{Realm: r.Name, Kind: kind, Theme: theme, Origin: origin}
			tp.Uses = append(tp.Uses, u)
			if mounted && slices.Contains(tp.Dropped, theme) {
				u.Origin += "; the target's values bring none"
				tp.Lost = append(tp.Lost, u)
			}
		}
	}
	return tp, nil
}
