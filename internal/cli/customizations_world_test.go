package cli

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// treeFiles reads every file below dir, by slash path.
func treeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// writeTree writes files below dir.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameTree fails unless got holds exactly want's files, byte for byte.
func sameTree(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	for p, data := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s is missing", what, p)
		} else if !bytes.Equal(g, data) {
			t.Errorf("%s: %s differs", what, p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s was not saved, yet is there", what, p)
		}
	}
}

// themeFiles are the files of a login theme called name, an image among them.
func themeFiles(name string) map[string][]byte {
	return map[string][]byte{
		"login/theme.properties":          []byte("parent=keycloak\nimport=common/keycloak\nstyles=css/login.css\n"),
		"login/resources/css/login.css":   []byte(".login-pf body { background: #0b3d91; } /* " + name + " */\n"),
		"login/resources/img/logo.png":    append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 255, 17, 3}, 4096)...),
		"login/messages/messages_en.prop": []byte("loginTitle=Sign in to " + name + "\n"),
	}
}

// A ZIP installation: backup --keycloak-home saves the operator's parts of the Keycloak home
// (a custom theme, a provider jar, an edited standalone.xml, a JDBC module, the realm file)
// into the bundle; restore --customizations-to writes them into an empty directory laid out
// like the home, byte for byte, and nothing of Keycloak's own; inspect lists them.
func TestZIPHomeCustomizations(t *testing.T) {
	db := testworld.Postgres(t)
	home := t.TempDir()
	own := map[string][]byte{
		"bin/standalone.sh": []byte("#!/bin/sh\n"),
		"standalone/configuration/standalone_xml_history/standalone.initial.xml":    []byte("<server/>"),
		"standalone/deployments/acme-provider.jar.deployed":                         nil,
		"modules/system/layers/keycloak/org/keycloak/keycloak-core/main/module.xml": []byte("<module/>"),
		"themes/base/login/template.ftl":                                            []byte("<#macro registrationLayout/>"),
		"themes/keycloak/login/theme.properties":                                    []byte("parent=base\n"),
		"themes/keycloak.v2/account/theme.properties":                               []byte("parent=base\n"),
		"themes/alfresco/login/theme.properties":                                    []byte("parent=keycloak\n"),
	}
	custom := map[string][]byte{
		"standalone/configuration/standalone.xml":       []byte("<server><subsystem xmlns=\"urn:jboss:domain:undertow:10.0\"><http-listener proxy-address-forwarding=\"true\"/></subsystem></server>\n"),
		"standalone/deployments/acme-provider.jar":      append([]byte("PK\x03\x04"), bytes.Repeat([]byte{1, 2, 3, 4}, 2048)...),
		"modules/org/postgresql/main/module.xml":        []byte("<module xmlns=\"urn:jboss:module:1.3\" name=\"org.postgresql\"/>\n"),
		"modules/org/postgresql/main/postgresql-42.jar": append([]byte("PK\x03\x04"), bytes.Repeat([]byte{9}, 1000)...),
		"realm/alfresco-realm.json":                     []byte(`{"realm":"alfresco","enabled":true}`),
	}
	for p, data := range themeFiles("acme") {
		custom["themes/acme/"+p] = data
	}
	writeTree(t, home, own)
	writeTree(t, home, custom)

	store := t.TempDir()
	env := map[string]string{"DATABASE_URL": db.URL()}
	r := runCLI(t, env, "backup", "--backup-store=path:"+store, "--keycloak-home="+home)
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	bundleDir := lines[len(lines)-1]

	r = runCLI(t, nil, "inspect", "--from="+bundleDir)
	if r.code != rollout.ExitOK {
		t.Fatalf("inspect: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"customizations (keycloak-home): 9 files", "theme  acme", "home   standalone/configuration", "home   standalone/deployments",
		"home   modules/org", "home   realm", "customizations  customizations.tar.zst"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect lacks %q:\n%s", want, r.stdout)
		}
	}

	out := filepath.Join(t.TempDir(), "restored")
	r = runCLI(t, nil, "restore", "--from="+bundleDir, "--customizations-to="+out)
	if r.code != rollout.ExitOK {
		t.Fatalf("restore --customizations-to: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "customizations written to "+out+" (9 files, laid out like a Keycloak home") {
		t.Errorf("restore says:\n%s", r.stdout)
	}
	sameTree(t, "restored Keycloak home", treeFiles(t, out), custom)

	// Nothing is overwritten; a directory that is no Keycloak home is refused by name.
	r = runCLI(t, nil, "restore", "--from="+bundleDir, "--customizations-to="+out)
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "customizations-to \""+out+"\" is not empty") {
		t.Errorf("restore into a full directory: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, env, "backup", "--backup-store=path:"+store, "--keycloak-home="+t.TempDir())
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "keycloak-home") || !strings.Contains(r.stderr, "is not a Keycloak home") {
		t.Errorf("backup of a directory that is not a Keycloak home: exit %d\n%s", r.code, r.stderr)
	}
}

// installTheme gives the release's running Keycloak pod a theme copied in by hand (kubectl
// cp, as the theme's own README suggests): its files in the pod's themes directory, and the
// stand-in's Keycloak serving it while that pod lives. It returns the theme's files.
func installTheme(t *testing.T, w *installed, kc *testworld.Keycloak, name string) map[string][]byte {
	t.Helper()
	pods, err := w.kube.Client.CoreV1().Pods(w.kube.Namespace).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=keycloak"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("Keycloak pods: %v (%v)", pods, err)
	}
	files := themeFiles(name)
	dir := filepath.Join(w.kube.KeycloakHome(), "themes", name)
	t.Cleanup(func() { os.RemoveAll(dir) })
	// After the container started: a copy by hand.
	time.Sleep(time.Until(podStarted(&pods.Items[0]).Add(1100 * time.Millisecond)))
	writeTree(t, dir, files)
	kc.CopyTheme(&pods.Items[0], name)
	return files
}

// podStarted is when the pod's first container started.
func podStarted(p *corev1.Pod) time.Time {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running != nil {
			return s.State.Running.StartedAt.Time
		}
	}
	return time.Now()
}

// The theme check after the upgrade: a realm's login theme that Keycloak has before the
// upgrade and not after (copied into the running pod by hand, it goes with the pod) fails
// the upgrade, which is rolled back, and the summary names realm, kind, theme and where it
// came from; with missing-theme warn the upgrade stays, with a warning.
func TestUpgradeThemeCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrades on the simulated cluster")
	}
	setup := func(t *testing.T) (*installed, *testworld.Keycloak, string) {
		w := install13(t)
		theme := "acme-" + strings.ToLower(w.kube.Namespace)
		kc := testworld.StartKeycloak(t, "/auth", testworld.KeycloakRealm{Name: "master"},
			testworld.KeycloakRealm{Name: "alfresco", LoginTheme: theme, EmailTheme: "alfresco"})
		kc.WatchPods(w.kube, "app.kubernetes.io/name=keycloak")
		installTheme(t, w, kc, theme)
		return w, kc, theme
	}
	t.Run("missing-theme fail, as an action", func(t *testing.T) {
		t.Parallel()
		w, kc, theme := setup(t)
		env, files := actionStep(map[string]string{
			"INPUT_RELEASE-NAME": "identity", "INPUT_NAMESPACE": w.kube.Namespace, "INPUT_CHART": chart14,
			"INPUT_KUBECONFIG": string(w.kube.KubeconfigData), "INPUT_DATABASE-URL": w.db.URL(),
			"INPUT_RECREATE-STATEFULSETS": "orphan", "INPUT_BACKUP-STORE": "path:" + w.stores, "INPUT_ALLOW-PLAINTEXT-BACKUP": "true",
			"INPUT_STABILITY-WINDOW": "3s", "INPUT_KEYCLOAK-URL": kc.URL,
			"INPUT_KEYCLOAK-ADMIN-USER": kc.User, "INPUT_KEYCLOAK-ADMIN-PASSWORD": kc.Password,
		}).Environ(t)
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
		t.Logf("exit %d\n%s", code, stdout.String())
		if code != rollout.ExitRolledBack {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, rollout.ExitRolledBack, stdout.String(), stderr.String())
		}
		w.expect(t, 3, "2.1.0", "1.3")
		summary, err := os.ReadFile(files.Summary)
		if err != nil {
			t.Fatal(err)
		}
		named := `realm alfresco: login theme "` + theme + `" (copied into pod identity-id-keycloak-0 by hand after its container started (lost at its next restart))`
		for _, want := range []string{"rolled back", "theme check: a theme a realm names is missing from the new Keycloak", named, "missing-theme: warn",
			"| theme check |", "| Customizations | 1 Secrets (identity-id-keycloak-db)<br>2 realm exports (master, alfresco)<br>"} {
			if !strings.Contains(string(summary), want) {
				t.Errorf("summary lacks %q:\n%s", want, summary)
			}
		}
		for line := range strings.Lines(string(summary)) {
			// Other tests' themes may be there too: the pods' themes directory is the cluster's.
			if strings.HasPrefix(line, "| Customizations |") && !strings.Contains(line, theme) {
				t.Errorf("the customizations saved do not name theme %s: %s", theme, line)
			}
		}
		if got := dbContent(t, w.db); got != w.before {
			t.Error("the database differs from before the upgrade")
		}
		for what, text := range map[string]string{"stdout": strings.Replace(stdout.String(), "::add-mask::"+kc.Password, "", 1), "stderr": stderr.String(), "summary": string(summary)} {
			if strings.Contains(text, kc.Password) {
				t.Errorf("%s shows the Keycloak admin password", what)
			}
		}
	})
	t.Run("plan", func(t *testing.T) {
		t.Parallel()
		w, kc, theme := setup(t)
		args := []string{"plan", "--release-name", "identity", "--namespace", w.kube.Namespace, "--chart", chart14,
			"--database-url", w.db.URL(), "--recreate-statefulsets", "orphan"}
		env := map[string]string{"KUBECONFIG": w.kube.Kubeconfig, "KEYCLOAK_ADMIN_PASSWORD": kc.Password}
		r := runCLI(t, env, append(args, "--keycloak-url", kc.URL, "--keycloak-admin-user", kc.User)...)
		if r.code != rollout.ExitOK {
			t.Fatalf("plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, r, "Themes the realms name:\n  realm alfresco: login theme \""+theme+"\" (not in the manifest",
			"  realm alfresco: email theme \"alfresco\" (the image alfresco/alfresco-identity-service:1.3)")
		r = runCLI(t, env, args...)
		if r.code != rollout.ExitOK {
			t.Fatalf("plan without the admin API: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, r, "Themes: not known (keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given); the theme check after the upgrade is skipped")
	})
	t.Run("missing-theme warn, password from the environment", func(t *testing.T) {
		t.Parallel()
		w, kc, theme := setup(t)
		w.env = map[string]string{"KEYCLOAK_ADMIN_PASSWORD": kc.Password}
		r := w.upgrade(t.Context(), t, "--keycloak-url", kc.URL, "--keycloak-admin-user", kc.User, "--missing-theme", "warn")
		if r.code != rollout.ExitOK {
			t.Fatalf("exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		w.expect(t, 2, "3.0.0", "1.4.0")
		mustContain(t, r, "theme check: Keycloak 12.0.4 lacks 1 of the 2 themes the realms name: realm alfresco: login theme \""+theme+"\"")
		if !strings.Contains(r.stderr, `level=WARN msg="a theme a realm names is missing after the upgrade (missing-theme: warn)" realm=alfresco kind=login theme=`+theme) {
			t.Errorf("no warning naming the theme:\n%s", r.stderr)
		}
		if calls := kc.Calls(); len(calls.Problems) != 0 {
			t.Errorf("the Keycloak stand-in refused requests: %q", calls.Problems)
		}
	})
}

// An upgrade's bundle carries the customizations: a theme copied into the pod by hand is in
// it and comes back byte for byte with restore --customizations-to; with recipients nothing
// of the Secrets the pods reference (the database password) is readable in the store, the
// logs, the outputs or the summary, while the identity restores them.
func TestUpgradeCustomizationsEncrypted(t *testing.T) {
	if testing.Short() {
		t.Skip("an upgrade on the simulated cluster")
	}
	w := install13(t)
	hand := "hand-" + strings.ToLower(w.kube.Namespace)
	kc := testworld.StartKeycloak(t, "", testworld.KeycloakRealm{Name: "alfresco", LoginTheme: hand, ClientSecret: "client-Secret-92"})
	kc.WatchPods(w.kube, "app.kubernetes.io/name=keycloak")
	files := installTheme(t, w, kc, hand)
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	env, rf := actionStep(map[string]string{
		"INPUT_RELEASE-NAME": "identity", "INPUT_NAMESPACE": w.kube.Namespace, "INPUT_CHART": chart14,
		"INPUT_KUBECONFIG": string(w.kube.KubeconfigData), "INPUT_DATABASE-URL": w.db.URL(),
		"INPUT_RECREATE-STATEFULSETS": "orphan", "INPUT_BACKUP-STORE": "path:" + w.stores,
		"INPUT_BACKUP-ENCRYPTION-RECIPIENTS": identity.Recipient().String(),
		"INPUT_STABILITY-WINDOW":             "3s", "INPUT_MISSING-THEME": "warn",
		"INPUT_KEYCLOAK-URL": kc.URL, "INPUT_KEYCLOAK-ADMIN-USER": kc.User, "INPUT_KEYCLOAK-ADMIN-PASSWORD": kc.Password,
	}).Environ(t)
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != rollout.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	summary, _ := os.ReadFile(rf.Summary)
	outputs, _ := os.ReadFile(rf.Output)
	if !strings.Contains(string(summary), "1 themes ("+hand+")") || !strings.Contains(string(summary), "| Backup encryption | age, every file of the bundle |") {
		t.Errorf("summary:\n%s", summary)
	}
	secrets := map[string]string{
		"the database password": w.db.OwnerPassword, "the database password, in base64": base64.StdEncoding.EncodeToString([]byte(w.db.OwnerPassword)),
		"the Keycloak admin password": kc.Password,
	}
	shown := map[string][]byte{
		"stdout":  []byte(strings.NewReplacer("::add-mask::"+w.db.OwnerPassword, "", "::add-mask::"+kc.Password, "").Replace(stdout.String())),
		"stderr":  stderr.Bytes(),
		"summary": summary,
		"outputs": outputs,
	}
	maps.Copy(shown, treeFiles(t, w.stores))
	for where, data := range shown {
		for what, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s shows %s", where, what)
			}
		}
	}

	entries, err := os.ReadDir(w.stores)
	if err != nil || len(entries) != 1 {
		t.Fatalf("store holds %v (%v)", entries, err)
	}
	from := filepath.Join(w.stores, entries[0].Name())
	out := filepath.Join(t.TempDir(), "customizations")
	r := runCLI(t, map[string]string{"IDENTITY_UPGRADE_BACKUP_IDENTITY": identity.String()}, "restore", "--from="+from, "--customizations-to="+out)
	if r.code != rollout.ExitOK {
		t.Fatalf("restore --customizations-to: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got := treeFiles(t, out)
	saved := map[string][]byte{}
	for p, data := range got {
		if rest, ok := strings.CutPrefix(p, "themes/"+hand+"/"); ok {
			saved[rest] = data
		}
	}
	sameTree(t, "theme "+hand, saved, files)
	secret := got["kubernetes/secrets/identity-id-keycloak-db.yaml"]
	if !bytes.Contains(secret, []byte(base64.StdEncoding.EncodeToString([]byte(w.db.OwnerPassword)))) {
		t.Errorf("the restored Secret does not hold the password:\n%s", secret)
	}
	if export := got["realm-exports/alfresco.json"]; !bytes.Contains(export, []byte(`"secret":"**********"`)) {
		t.Errorf("the realm export as restored:\n%s", export)
	}
	r = runCLI(t, nil, "restore", "--from="+from, "--customizations-to="+filepath.Join(t.TempDir(), "x"))
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "backup-identity") {
		t.Errorf("restore of encrypted customizations without the identity: exit %d\n%s", r.code, r.stderr)
	}
}
