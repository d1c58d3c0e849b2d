package helmrelease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/releaseutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// The rehearsal's clone of a release: the upgrade's target installed in a scratch namespace
// under the release's name, so that every name the chart derives from it (the database's
// Service and Secret included) is production's, and the database inputs apply unchanged.

// Labels and annotations of a scratch namespace.
const (
	rehearsalOfLabel = "identity-upgrade.io/rehearsal-of"
	sourceAnnotation = "identity-upgrade.io/source-namespace"
	runAnnotation    = "identity-upgrade.io/run"
)

// In returns a client for another namespace of the same cluster.
func (c *Client) In(namespace string) (*Client, error) {
	opts := c.opts
	opts.Namespace = namespace
	return New(opts)
}

// CreateScratch creates namespace for a rehearsal of release, labelled as one. A namespace
// that exists is taken over only when it is a rehearsal's of the same release from the same
// namespace (a dead run's: it is emptied first); any other is refused with
// rollout.ErrScratchTaken.
func (c *Client) CreateScratch(ctx context.Context, namespace, release, runID string) error {
	nss := c.kube.CoreV1().Namespaces()
	if existing, err := nss.Get(ctx, namespace, metav1.GetOptions{}); err == nil {
		if existing.Labels[rehearsalOfLabel] != release || existing.Annotations[sourceAnnotation] != c.namespace {
			return fmt.Errorf("%w: namespace %s exists and is not labelled %s=%s (from namespace %s); give rehearsal-namespace a name nobody uses",
				rollout.ErrScratchTaken, namespace, rehearsalOfLabel, release, c.namespace)
		}
		c.log.Warn("a rehearsal namespace an earlier run left: emptying it", "namespace", namespace, "run", existing.Annotations[runAnnotation])
		if err := c.RemoveScratch(ctx, namespace, release); err != nil {
			return err
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s: %w", namespace, err)
	}
	_, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        namespace,
		Labels:      map[string]string{rehearsalOfLabel: release},
		Annotations: map[string]string{sourceAnnotation: c.namespace, runAnnotation: runID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create the rehearsal namespace %s: %w", namespace, err)
	}
	// Pods need the namespace's default ServiceAccount, which a controller creates.
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.kube.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// RemoveScratch uninstalls the clone of release from namespace, deletes the claims left there
// and the namespace, and waits until the namespace is gone. It refuses a namespace that is not
// a rehearsal's of release; one that does not exist is not an error.
func (c *Client) RemoveScratch(ctx context.Context, namespace, release string) error {
	nss := c.kube.CoreV1().Namespaces()
	ns, err := nss.Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read namespace %s: %w", namespace, err)
	case ns.Labels[rehearsalOfLabel] != release:
		return fmt.Errorf("%w: namespace %s is not a rehearsal's of %s: not deleting it", rollout.ErrScratchTaken, namespace, release)
	}
	if ns.DeletionTimestamp == nil {
		scratch, err := c.In(namespace)
		if err != nil {
			return err
		}
		if _, err := scratch.cfg.Releases.Last(release); err == nil {
			un := action.NewUninstall(scratch.cfg)
			un.Wait, un.Timeout = false, time.Minute
			if _, err := un.Run(release); err != nil {
				c.log.Warn("uninstall the clone (the namespace's deletion removes what is left)", "namespace", namespace, "err", err)
			}
		}
		claims := c.kube.CoreV1().PersistentVolumeClaims(namespace)
		if err := claims.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the clone's claims in %s: %w", namespace, err)
		}
		if err := nss.Delete(ctx, namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", namespace, err)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := nss.Get(ctx, namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s is still there: %w", namespace, err)
	}
	return nil
}

// InstallClone installs what an upgrade of release name to spec would make, as release name
// in namespace: the chart of spec with the values the upgrade would give it (the release's,
// reused as the upgrade reuses them, and spec's), turned into a clone by a post-renderer: no
// Ingress (the clone must not take production's host), every Keycloak workload at 0 replicas
// (it starts once its database holds production's data). Claims that production's pods mount
// and the chart does not create get fresh ones of the same size and class in namespace. A
// target that creates cluster-scoped objects is refused: their names, derived from the
// release's, would be production's.
// CloneDatabase is a database of the user's that a clone's Keycloak uses instead of the one its
// values name (rehearsal-database-url).
type CloneDatabase struct {
	Host, Port, Name, User, Password string
}

// cloneDatabaseSecret holds the password of a clone's database of the user's.
func cloneDatabaseSecret(release string) string { return release + "-rehearsal-database" }

func (c *Client) InstallClone(ctx context.Context, name, namespace string, spec UpgradeSpec, db *CloneDatabase, timeout time.Duration) (rollout.Release, error) {
	dry, _, err := c.render(ctx, name, spec)
	if err != nil {
		return rollout.Release{}, err
	}
	scratch, err := c.In(namespace)
	if err != nil {
		return rollout.Release{}, err
	}
	ch, err := c.chart(spec)
	if err != nil {
		return rollout.Release{}, err
	}
	pr := &cloneRenderer{mapper: c.cfg.RESTClientGetter, db: db, secret: cloneDatabaseSecret(name)}
	if db != nil {
		// Keycloak reads the password from a Secret of the clone's, never from its spec.
		_, err := c.kube.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: pr.secret, Labels: map[string]string{rehearsalOfLabel: name}},
			StringData: map[string]string{"password": db.Password},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return rollout.Release{}, fmt.Errorf("the clone's database password: %w", err)
		}
	}
	// The values as the upgrade computed them; the clone renders them afresh in its namespace.
	install := action.NewInstall(scratch.cfg)
	install.ReleaseName, install.Namespace = name, namespace
	install.Timeout, install.Wait = timeout, false
	install.PostRenderer = pr
	install.DryRun, install.DryRunOption = true, "client"
	probe, err := install.RunWithContext(ctx, ch, dry.Config)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("render the clone of %q in %s: %w", name, namespace, err)
	}
	if err := c.freshClaims(ctx, namespace, probe.Manifest); err != nil {
		return rollout.Release{}, err
	}
	install.DryRun, install.DryRunOption = false, ""
	rel, err := install.RunWithContext(ctx, ch, dry.Config)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("install the clone of %q in %s: %w", name, namespace, err)
	}
	out := fromHelm(rel)
	c.log.Info("installed the clone", "namespace", namespace, "chart", out.Chart(), "dropped", pr.dropped, "held at 0", pr.held)
	return out, nil
}

// cloneRenderer is the post-renderer that turns an upgrade's target into its clone.
type cloneRenderer struct {
	mapper interface {
		ToRESTMapper() (meta.RESTMapper, error)
	}
	// db, when set, is the database the clone's Keycloak uses, through the variables Keycloak's
	// image reads (DB_ADDR, DB_PORT, DB_DATABASE, DB_USER, DB_PASSWORD from secret).
	db            *CloneDatabase
	secret        string
	dropped, held []string
}

func (p *cloneRenderer) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	mapper, err := p.mapper.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	p.dropped, p.held = nil, nil
	var out bytes.Buffer
	var clusterScoped []string
	for _, doc := range releaseutil.SplitManifests(rendered.String()) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("clone: read a rendered object: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		u := unstructured.Unstructured{Object: obj}
		gvk := u.GroupVersionKind()
		id := gvk.Kind + "/" + u.GetName()
		if m, err := mapper.RESTMapping(schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, gvk.Version); err == nil && m.Scope.Name() == meta.RESTScopeNameRoot {
			clusterScoped = append(clusterScoped, id)
			continue
		}
		switch {
		case gvk.Kind == "Ingress":
			p.dropped = append(p.dropped, id)
			continue
		case isKeycloak(&u):
			if err := unstructured.SetNestedField(u.Object, int64(0), "spec", "replicas"); err != nil {
				return nil, err
			}
			p.held = append(p.held, id)
			if p.db != nil {
				if err := p.pointAt(&u); err != nil {
					return nil, err
				}
			}
		}
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	if len(clusterScoped) > 0 {
		slices.Sort(clusterScoped)
		return nil, fmt.Errorf("the target creates cluster-scoped objects, whose names (derived from the release's) a clone would share with production: %s; "+
			"it cannot be rehearsed in a namespace of the same cluster", strings.Join(clusterScoped, ", "))
	}
	return &out, nil
}

// pointAt sets the database variables of every container of a Keycloak workload to the clone's
// own database, replacing what the chart gave them.
func (p *cloneRenderer) pointAt(u *unstructured.Unstructured) error {
	containers, _, err := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if err != nil {
		return err
	}
	set := []map[string]any{
		{"name": "DB_VENDOR", "value": "postgres"},
		{"name": "DB_ADDR", "value": p.db.Host},
		{"name": "DB_PORT", "value": p.db.Port},
		{"name": "DB_DATABASE", "value": p.db.Name},
		{"name": "DB_USER", "value": p.db.User},
		{"name": "DB_PASSWORD", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": p.secret, "key": "password"}}},
	}
	for i, c := range containers {
		m := c.(map[string]any)
		env, _ := m["env"].([]any)
		var kept []any
		for _, e := range env {
			name, _ := e.(map[string]any)["name"].(string)
			if !slices.ContainsFunc(set, func(s map[string]any) bool { return s["name"] == name }) {
				kept = append(kept, e)
			}
		}
		for _, s := range set {
			kept = append(kept, s)
		}
		m["env"] = kept
		containers[i] = m
	}
	return unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
}

// isKeycloak reports whether u is a workload the one classifier calls Keycloak (the quiesce's
// and the port-forward's rule), never PostgreSQL.
func isKeycloak(u *unstructured.Unstructured) bool {
	w, ok, err := manifest.WorkloadOf(u)
	if !ok || err != nil {
		return false
	}
	app, _ := manifest.Classify(w)
	return app == manifest.Keycloak
}

// freshClaims creates in namespace the claims the clone's pods mount that its manifest does not
// create: of the size, access modes and class of production's claim of the same name (1Gi,
// ReadWriteOnce and the default class when production has none).
func (c *Client) freshClaims(ctx context.Context, namespace, manifest string) error {
	created := map[string]bool{}
	var mounted []string
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil || u.Object == nil {
			continue
		}
		if u.GetKind() == "PersistentVolumeClaim" {
			created[u.GetName()] = true
		}
		volumes, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "volumes")
		for _, v := range volumes {
			if name, _, _ := unstructured.NestedString(v.(map[string]any), "persistentVolumeClaim", "claimName"); name != "" {
				mounted = append(mounted, name)
			}
		}
	}
	var errs []error
	for _, name := range mounted {
		if created[name] {
			continue
		}
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{rehearsalOfLabel: "claim"}},
			Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		}
		claim.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}
		if prod, err := c.kube.CoreV1().PersistentVolumeClaims(c.namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			claim.Spec.AccessModes, claim.Spec.Resources = prod.Spec.AccessModes, prod.Spec.Resources
			claim.Spec.StorageClassName, claim.Spec.VolumeMode = prod.Spec.StorageClassName, prod.Spec.VolumeMode
		}
		_, err := c.kube.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, claim, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("create the clone's claim %s: %w", name, err))
		}
		created[name] = true
	}
	return errors.Join(errs...)
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
