package keycloak

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// writeTheme writes a theme directory into the simulated pods' themes directory, with a
// binary image and a properties file, and returns its files by path below the theme.
func writeTheme(t *testing.T, kube testworld.Kube, name string, mtime time.Time) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"login/theme.properties":          []byte("parent=keycloak\nimport=common/keycloak\n"),
		"login/resources/img/logo.png":    append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, 255}, 5000)...),
		"login/messages/messages_en.prop": []byte("loginTitle=" + name + "\n"),
	}
	root := filepath.Join(kube.KeycloakHome(), "themes", name)
	t.Cleanup(func() { os.RemoveAll(root) })
	for p, data := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if !mtime.IsZero() {
			if err := os.Chtimes(full, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
	return files
}

// keycloakWithCustomizations creates, in the test's namespace, a Keycloak StatefulSet the way
// the field configures one: a startup ConfigMap (envFrom), a realm Secret (volume), the
// database password from a Secret (env), an optional Secret that is not there, and an init
// container that copies theme into an emptyDir mounted on .../themes/<theme>. It returns the
// manifest and waits for the pod.
func keycloakWithCustomizations(t *testing.T, kube testworld.Kube, theme string) string {
	t.Helper()
	ctx, ns := t.Context(), kube.Namespace
	objs := []any{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kc-startup", Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{\"data\":\"x\"}"}},
			Data: map[string]string{"KEYCLOAK_STARTUP": "/scripts/start.cli"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kc-realm"}, Data: map[string][]byte{"realm.json": []byte(`{"realm":"alfresco","clients":[{"secret":"realm-Secret-41"}]}`)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kc-db"}, Data: map[string][]byte{"password": []byte("db-Passw0rd-42")}},
	}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ConfigMap:
			_, err = kube.Client.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = kube.Client.CoreV1().Secrets(ns).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app.kubernetes.io/name": "keycloak", "app.kubernetes.io/instance": "identity"}
	kc := statefulSet("identity-id-keycloak", 1, labels)
	optional := true
	spec := &kc.Spec.Template.Spec
	spec.InitContainers = []corev1.Container{{
		Name: "theme-" + theme, Image: "example.invalid/acme-theme:1",
		Command:      []string{"sh", "-c", "cp -R /theme/* /themes/" + theme},
		VolumeMounts: []corev1.VolumeMount{{Name: "theme", MountPath: "/themes/" + theme}},
	}}
	spec.Containers = []corev1.Container{{
		Name: "keycloak", Image: "alfresco/alfresco-identity-service:1.3",
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kc-startup"}}}},
		Env: []corev1.EnvVar{
			{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "kc-db"}, Key: "password"}}},
			{Name: "EXTRA", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "kc-extra"}, Key: "x", Optional: &optional}}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "theme", MountPath: "/opt/jboss/keycloak/themes/" + theme},
			{Name: "realm", MountPath: "/realm"},
		},
	}}
	spec.Volumes = []corev1.Volume{
		{Name: "theme", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "realm", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "kc-realm"}}},
	}
	if _, err := kube.Client.AppsV1().StatefulSets(ns).Create(ctx, kc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPods(t, kube.Client, ns, "app.kubernetes.io/name=keycloak", 1)
	return manifestOf(t, kc)
}

// TestSaveCustomizations reads a Keycloak pod of the simulated cluster for real: the
// ConfigMaps and Secrets it references from the API server, the realms through the admin API
// stand-in, and its themes through pod exec, where kwok runs a real tar over the directory
// that plays the pod's themes directory. A theme an init container brought, one baked into
// the image and one copied in by hand are saved byte for byte, each with its origin; the
// built-in ones are not.
func TestSaveCustomizations(t *testing.T) {
	kube := testworld.Cluster(t)
	ctx := t.Context()
	suffix := strings.ToLower(kube.Namespace)
	initTheme, baked, hand := "acme-"+suffix, "baked-"+suffix, "hand-"+suffix
	want := map[string]map[string][]byte{
		initTheme: writeTheme(t, kube, initTheme, time.Time{}),
		baked:     writeTheme(t, kube, baked, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)),
	}
	// The test world's Keycloak home has Keycloak's themes and the image's (alfresco) already.
	for _, own := range []string{"base", "keycloak", "alfresco"} {
		if _, err := os.Stat(filepath.Join(kube.KeycloakHome(), "themes", own)); err != nil {
			t.Fatal(err)
		}
	}
	manifest := keycloakWithCustomizations(t, kube, initTheme)
	time.Sleep(1100 * time.Millisecond) // the hand copy is newer than the container's start
	want[hand] = writeTheme(t, kube, hand, time.Time{})

	api := testworld.StartKeycloak(t, "/auth",
		testworld.KeycloakRealm{Name: "master"},
		testworld.KeycloakRealm{Name: "alfresco", LoginTheme: initTheme, AccountTheme: "keycloak", EmailTheme: hand, AdminTheme: "gone", ClientSecret: "client-Secret-43"})
	dir := filepath.Join(t.TempDir(), "customizations")
	c := Customizations{
		Client: kube.Client, Config: kube.Config, Dir: dir,
		Admin: &Admin{BaseURL: api.URL, User: api.User, Password: api.Password, Log: testLogger(t)}, Log: testLogger(t),
	}
	saved, err := c.Save(ctx, kube.Namespace, manifest)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %v; warnings %q", saved.Saved, saved.Warnings)
	if len(saved.Warnings) != 0 {
		t.Errorf("warnings %q", saved.Warnings)
	}
	idx, err := bundle.ReadCustomizationsIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]bundle.CustomizationItem{}
	for _, it := range idx.Items {
		items[it.Kind+"/"+it.Name] = it
	}
	for key, origin := range map[string]string{
		"configmap/kc-startup":  "container keycloak envFrom of StatefulSet/identity-id-keycloak",
		"secret/kc-realm":       "volume realm of StatefulSet/identity-id-keycloak",
		"secret/kc-db":          "container keycloak env DB_PASSWORD of StatefulSet/identity-id-keycloak",
		"realm-export/alfresco": "admin API partial export",
		"realm-export/master":   "admin API partial export",
		"theme/" + initTheme:    "init container theme-" + initTheme + " (image example.invalid/acme-theme:1)",
		"theme/" + baked:        "the image alfresco/alfresco-identity-service:1.3",
		"theme/" + hand:         "copied into pod identity-id-keycloak-0 by hand after its container started (lost at its next restart)",
	} {
		if it, ok := items[key]; !ok || it.Origin != origin {
			t.Errorf("%s: saved %+v, want origin %q", key, it, origin)
		}
	}
	for _, key := range []string{"theme/base", "theme/alfresco", "secret/kc-extra"} {
		if _, ok := items[key]; ok {
			t.Errorf("%s saved", key)
		}
	}
	if len(items) != 8 {
		t.Errorf("%d items saved, want 8: %v", len(items), idx.Items)
	}
	if items["realm-export/alfresco"].Note != MaskedExportNote {
		t.Errorf("realm export note %q", items["realm-export/alfresco"].Note)
	}
	for theme, files := range want {
		n := 0
		filepath.WalkDir(filepath.Join(dir, "themes", theme), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			rel, _ := filepath.Rel(filepath.Join(dir, "themes", theme), p)
			data, _ := os.ReadFile(p)
			if !bytes.Equal(data, files[filepath.ToSlash(rel)]) {
				t.Errorf("theme %s: %s differs from the pod's", theme, rel)
			}
			return nil
		})
		if n != len(files) {
			t.Errorf("theme %s: %d files saved, want %d", theme, n, len(files))
		}
	}
	secret, err := os.ReadFile(filepath.Join(dir, "kubernetes", "secrets", "kc-realm.yaml"))
	if err != nil || !strings.Contains(string(secret), base64.StdEncoding.EncodeToString([]byte(`{"realm":"alfresco","clients":[{"secret":"realm-Secret-41"}]}`))) ||
		strings.Contains(string(secret), "resourceVersion") {
		t.Errorf("the realm Secret as saved (%v):\n%s", err, secret)
	}
	cm, _ := os.ReadFile(filepath.Join(dir, "kubernetes", "configmaps", "kc-startup.yaml"))
	if !strings.Contains(string(cm), "KEYCLOAK_STARTUP: /scripts/start.cli") || strings.Contains(string(cm), corev1.LastAppliedConfigAnnotation) {
		t.Errorf("the ConfigMap as saved:\n%s", cm)
	}
	wantUses := []rollout.ThemeUse{
		{Realm: "alfresco", Kind: "login", Theme: initTheme, Origin: items["theme/"+initTheme].Origin},
		{Realm: "alfresco", Kind: "account", Theme: "keycloak", Origin: "Keycloak's own"},
		{Realm: "alfresco", Kind: "admin", Theme: "gone", Origin: "not found in the running Keycloak pod's themes directory (a provider's, or Keycloak already lacks it)"},
		{Realm: "alfresco", Kind: "email", Theme: hand, Origin: items["theme/"+hand].Origin},
	}
	if len(saved.Themes) != len(wantUses) {
		t.Fatalf("theme uses %v, want %v", saved.Themes, wantUses)
	}
	for i, u := range wantUses {
		if saved.Themes[i] != u {
			t.Errorf("theme use %d = %+v, want %+v", i, saved.Themes[i], u)
		}
	}

	t.Run("themes over the cap", func(t *testing.T) {
		c := c
		c.MaxThemeBytes, c.Dir = 1000, filepath.Join(t.TempDir(), "c")
		saved, err := c.Save(ctx, kube.Namespace, manifest)
		if err != nil {
			t.Fatal(err)
		}
		if len(saved.Warnings) != 1 || !strings.Contains(saved.Warnings[0], "exceed 1000B") {
			t.Errorf("warnings %q, want one about the cap", saved.Warnings)
		}
		if entries, _ := os.ReadDir(filepath.Join(saved.Dir, "themes")); len(entries) != 0 {
			t.Errorf("themes over the cap left %v", entries)
		}
	})
	t.Run("no exec permission", func(t *testing.T) {
		// What the README's Role gives, but pods/exec.
		token := kube.ServiceAccountToken(t, "no-exec", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "configmaps", "secrets"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"apps"}, Resources: []string{"statefulsets", "deployments"}, Verbs: []string{"get", "list"}},
		})
		cfg := rest.AnonymousClientConfig(kube.Config)
		cfg.BearerToken = token
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := Customizations{Client: client, Config: cfg, Dir: filepath.Join(t.TempDir(), "c"), Log: testLogger(t)}
		saved, err := c.Save(ctx, kube.Namespace, manifest)
		if err != nil {
			t.Fatalf("Save without pods/exec: %v, want warnings", err)
		}
		if len(saved.Warnings) != 1 || !strings.Contains(saved.Warnings[0], "pods/exec") || !strings.Contains(saved.Warnings[0], "forbidden") {
			t.Errorf("warnings %q, want one naming pods/exec and the refusal", saved.Warnings)
		}
		if saved.ThemeCheckSkipped == "" {
			t.Error("the theme check is not said to be skipped without the admin API inputs")
		}
		if len(saved.Saved) != 2 || saved.Saved[0].Kind != "ConfigMaps" || saved.Saved[1].Kind != "Secrets" {
			t.Errorf("saved %v, want the ConfigMaps and Secrets", saved.Saved)
		}
	})
}

// The plan's themes: a theme that an init container of the current revision brings and that
// the target's Keycloak has no volume for is lost, for the realm that names it; without the
// admin API inputs the dropped theme is still named.
func TestPlanThemes(t *testing.T) {
	labels := map[string]string{"app.kubernetes.io/name": "keycloak"}
	withTheme := statefulSet("identity-id-keycloak", 1, labels)
	spec := &withTheme.Spec.Template.Spec
	spec.InitContainers = []corev1.Container{{Name: "theme-acme", Image: "acme/theme:1", VolumeMounts: []corev1.VolumeMount{{Name: "theme", MountPath: "/themes/acme"}}}}
	spec.Containers = []corev1.Container{{Name: "keycloak", Image: "alfresco/alfresco-identity-service:1.3",
		VolumeMounts: []corev1.VolumeMount{{Name: "theme", MountPath: "/opt/jboss/keycloak/themes/acme"}}}}
	spec.Volumes = []corev1.Volume{{Name: "theme", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	without := statefulSet("identity-id-keycloak", 1, labels)
	without.Spec.Template.Spec.Containers = []corev1.Container{{Name: "keycloak", Image: "alfresco/alfresco-identity-service:1.4.0"}}
	current := rollout.Release{Revision: 4, Manifest: manifestOf(t, withTheme)}
	target := rollout.Release{Manifest: manifestOf(t, without)}

	api := testworld.StartKeycloak(t, "", testworld.KeycloakRealm{Name: "alfresco", LoginTheme: "acme", EmailTheme: "alfresco", AccountTheme: "mine"})
	c := Customizations{Admin: &Admin{BaseURL: api.URL, User: api.User, Password: api.Password}, Log: testLogger(t)}
	tp, err := c.PlanThemes(t.Context(), "ns", current, target)
	if err != nil {
		t.Fatal(err)
	}
	acme := rollout.ThemeUse{Realm: "alfresco", Kind: "login", Theme: "acme", Origin: "init container theme-acme (image acme/theme:1) of revision 4"}
	want := []rollout.ThemeUse{acme,
		{Realm: "alfresco", Kind: "account", Theme: "mine", Origin: "not in the manifest (a custom image's, a copy by hand or a provider's): the theme check after the upgrade tells"},
		{Realm: "alfresco", Kind: "email", Theme: "alfresco", Origin: "the image alfresco/alfresco-identity-service:1.3"}}
	if !slices.Equal(tp.Uses, want) {
		t.Errorf("uses %+v, want %+v", tp.Uses, want)
	}
	acme.Origin += "; the target's values bring none"
	if !slices.Equal(tp.Lost, []rollout.ThemeUse{acme}) || !slices.Equal(tp.Dropped, []string{"acme"}) || tp.Skipped != "" {
		t.Errorf("lost %+v, dropped %v, skipped %q", tp.Lost, tp.Dropped, tp.Skipped)
	}
	// The target that keeps the init container loses nothing.
	if tp, err := c.PlanThemes(t.Context(), "ns", current, current); err != nil || len(tp.Lost) != 0 || len(tp.Dropped) != 0 {
		t.Errorf("same revision: %+v, %v", tp, err)
	}
	c.Admin = &Admin{}
	if tp, err := c.PlanThemes(t.Context(), "ns", current, target); err != nil || tp.Skipped == "" || !slices.Equal(tp.Dropped, []string{"acme"}) {
		t.Errorf("without the admin API: %+v, %v", tp, err)
	}
}
