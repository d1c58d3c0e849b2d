package helmrelease_test

import (
	"encoding/base64"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/kubeapis"
)

// The test charts of testdata/charts/identity: doubles of alfresco-identity-service 2.1.0
// (Identity Service 1.3) and 3.0.0 (Identity Service 1.4), rendered the way helm v3 renders them
// for a Kubernetes 1.37 cluster.

const (
	relName   = "idsvc"
	relNS     = "identity"
	faultKey  = "identity-upgrade.test/fault"
	delayKey  = "identity-upgrade.test/fault-delay"
	badImage  = "registry.invalid/identity-upgrade/does-not-exist:0"
	keycloak  = relName + "-id-keycloak"
	postgres  = relName + "-postgresql-id"
	dbSecret  = relName + "-id-keycloak-db"
	backupPVC = relName + "-id-backup"
)

var versions = []string{"2.1.0", "3.0.0"}

// kwokFaults are the faults the chart marks with the pod label for the kwok stages.
var kwokFaults = []string{"crash-after-ready", "crashloop", "image-pull", "create-container-config-error"}

func chartDir(version string) string {
	return filepath.Join("..", "..", "testdata", "charts", "identity", version)
}

// rendered is one client-side render: the release plus its non-hook objects by "Kind/name".
type rendered struct {
	rel     *release.Release
	objects map[string]string
}

func render(t *testing.T, version string, vals map[string]any) (rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir(version))
	if err != nil {
		t.Fatalf("load chart %s: %v", version, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = relName
	install.Namespace = relNS
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	rel, err := install.Run(ch, vals)
	if err != nil {
		return rendered{}, err
	}
	return rendered{rel: rel, objects: objectsOf(t, rel.Manifest)}, nil
}

func mustRender(t *testing.T, version string, vals map[string]any) rendered {
	t.Helper()
	r, err := render(t, version, vals)
	if err != nil {
		t.Fatalf("render chart %s with %v: %v", version, vals, err)
	}
	return r
}

// decode decodes a manifest strictly: a field the Kubernetes type does not have is an error.
func decode[T any](t *testing.T, doc string) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, doc)
	}
	return v
}

func (r rendered) statefulSet(t *testing.T, name string) appsv1.StatefulSet {
	t.Helper()
	doc, ok := r.objects["StatefulSet/"+name]
	if !ok {
		t.Fatalf("no StatefulSet %s among %v", name, slices.Sorted(maps.Keys(r.objects)))
	}
	return decode[appsv1.StatefulSet](t, doc)
}

func TestChartsRenderDefaults(t *testing.T) {
	images := map[string]string{"2.1.0": "alfresco/alfresco-identity-service:1.3", "3.0.0": "alfresco/alfresco-identity-service:1.4.0"}
	appVersions := map[string]string{"2.1.0": "1.3.0", "3.0.0": "1.4.0"}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			r := mustRender(t, v, nil)
			md := r.rel.Chart.Metadata
			if md.Name != "alfresco-identity-service" || md.Version != v || md.AppVersion != appVersions[v] {
				t.Errorf("chart metadata = %s %s (app %s), want alfresco-identity-service %s (app %s)", md.Name, md.Version, md.AppVersion, v, appVersions[v])
			}
			want := []string{
				"Secret/" + dbSecret,
				"Secret/" + postgres, // the bundled PostgreSQL's password, where the vendor's chart keeps it
				"Service/" + keycloak,
				"Service/" + postgres,
				"StatefulSet/" + keycloak,
				"StatefulSet/" + postgres,
			}
			if got := slices.Sorted(maps.Keys(r.objects)); !slices.Equal(got, want) {
				t.Errorf("objects = %v, want %v", got, want)
			}

			kc := r.statefulSet(t, keycloak)
			if kc.Spec.Replicas == nil || *kc.Spec.Replicas != 1 {
				t.Errorf("keycloak replicas = %v, want 1", kc.Spec.Replicas)
			}
			c := kc.Spec.Template.Spec.Containers[0]
			if c.Image != images[v] {
				t.Errorf("keycloak image = %q, want %q", c.Image, images[v])
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/auth/realms/master" || p.HTTPGet.Port.IntValue() != 8080 {
				t.Errorf("keycloak readinessProbe = %+v, want GET /auth/realms/master on 8080", p)
			}
			fromSecret := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					if e.ValueFrom.SecretKeyRef.Name != dbSecret {
						t.Errorf("env %s from Secret %s, want %s", e.Name, e.ValueFrom.SecretKeyRef.Name, dbSecret)
					}
					fromSecret[e.Name] = e.ValueFrom.SecretKeyRef.Key
				}
			}
			for _, k := range []string{"DB_ADDR", "DB_PORT", "DB_DATABASE", "DB_USER", "DB_PASSWORD"} {
				if fromSecret[k] != k {
					t.Errorf("keycloak env %s not read from key %s of the DB Secret (env from secret: %v)", k, k, fromSecret)
				}
			}

			secret := decode[corev1.Secret](t, r.objects["Secret/"+dbSecret])
			wantData := map[string]string{"DB_ADDR": postgres, "DB_PORT": "5432", "DB_DATABASE": "keycloak", "DB_USER": "keycloak", "DB_PASSWORD": "keycloak"}
			for k, want := range wantData {
				if got := string(secret.Data[k]); got != want {
					t.Errorf("Secret %s key %s = %q, want %q", dbSecret, k, got, want)
				}
			}

			for _, name := range []string{keycloak, postgres} {
				sts := r.statefulSet(t, name)
				pod := sts.Spec.Template
				if _, ok := pod.Labels[faultKey]; ok {
					t.Errorf("%s: pod label %s without a fault", name, faultKey)
				}
				if pod.Spec.NodeSelector != nil {
					t.Errorf("%s: nodeSelector %v without a fault", name, pod.Spec.NodeSelector)
				}
				if !hasKwokToleration(pod.Spec.Tolerations) {
					t.Errorf("%s: tolerations %+v lack kwok.x-k8s.io/node=fake:NoSchedule", name, pod.Spec.Tolerations)
				}
				for k, val := range sts.Spec.Selector.MatchLabels {
					if pod.Labels[k] != val {
						t.Errorf("%s: pod template labels %v do not match selector %v", name, pod.Labels, sts.Spec.Selector.MatchLabels)
					}
				}
				svc := decode[corev1.Service](t, r.objects["Service/"+name])
				for k, val := range svc.Spec.Selector {
					if pod.Labels[k] != val {
						t.Errorf("Service %s selector %v does not select pod template labels %v", name, svc.Spec.Selector, pod.Labels)
					}
				}
				if sts.Spec.ServiceName != name {
					t.Errorf("%s: serviceName %q, want %q", name, sts.Spec.ServiceName, name)
				}
			}
			if vols := kc.Spec.Template.Spec.Volumes; len(vols) != 0 {
				t.Errorf("keycloak volumes = %+v, want none without persistence.existingClaim", vols)
			}
			pg := r.statefulSet(t, postgres)
			if len(pg.Spec.VolumeClaimTemplates) != 0 || len(pg.Spec.Template.Spec.Volumes) != 1 || pg.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
				t.Errorf("postgres volumes = %+v, claims = %+v, want one emptyDir and no claim by default", pg.Spec.Template.Spec.Volumes, pg.Spec.VolumeClaimTemplates)
			}
		})
	}
}

func hasKwokToleration(ts []corev1.Toleration) bool {
	for _, tol := range ts {
		if tol.Key == "kwok.x-k8s.io/node" && tol.Operator == corev1.TolerationOpEqual && tol.Value == "fake" && tol.Effect == corev1.TaintEffectNoSchedule {
			return true
		}
	}
	return false
}

// The postgres StatefulSet's selector is what makes a plain helm upgrade 2.1.0 -> 3.0.0 fail
// (spec.selector is immutable); Keycloak's must stay the same, so that helm patches it first.
func TestPostgresSelectorChangesBetweenVersions(t *testing.T) {
	want := map[string]map[string]string{
		"2.1.0": {"app": "postgresql-id", "release": relName, "role": "master"},
		"3.0.0": {"app.kubernetes.io/name": "postgresql-id", "app.kubernetes.io/instance": relName, "role": "master"},
	}
	keycloakSelectors := map[string]map[string]string{}
	for _, v := range versions {
		r := mustRender(t, v, nil)
		pg := r.statefulSet(t, postgres)
		if got := pg.Spec.Selector.MatchLabels; !maps.Equal(got, want[v]) || len(pg.Spec.Selector.MatchExpressions) != 0 {
			t.Errorf("chart %s: postgres selector = %v %v, want matchLabels %v", v, got, pg.Spec.Selector.MatchExpressions, want[v])
		}
		for k, val := range want[v] {
			if pg.Spec.Template.Labels[k] != val {
				t.Errorf("chart %s: postgres pod template label %s = %q, want %q", v, k, pg.Spec.Template.Labels[k], val)
			}
		}
		keycloakSelectors[v] = r.statefulSet(t, keycloak).Spec.Selector.MatchLabels
	}
	if !maps.Equal(keycloakSelectors["2.1.0"], keycloakSelectors["3.0.0"]) {
		t.Errorf("keycloak selector changed between versions: %v -> %v", keycloakSelectors["2.1.0"], keycloakSelectors["3.0.0"])
	}
	// helm applies objects of one kind in template file order: Keycloak before PostgreSQL.
	r := mustRender(t, "3.0.0", nil)
	if k, p := strings.Index(r.rel.Manifest, "name: "+keycloak+"\n"), strings.Index(r.rel.Manifest, "kind: StatefulSet\nmetadata:\n  name: "+postgres+"\n"); k < 0 || p < 0 || k > p {
		t.Errorf("keycloak StatefulSet (at %d) must come before the postgres one (at %d) in the manifest", k, p)
	}
}

// hooksByEvent lists "Kind/name" of the release's hooks for each hook event.
func hooksByEvent(rel *release.Release) map[release.HookEvent][]string {
	out := map[release.HookEvent][]string{}
	for _, h := range rel.Hooks {
		for _, e := range h.Events {
			out[e] = append(out[e], h.Kind+"/"+h.Name)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func hookManifest(t *testing.T, rel *release.Release, kind, name string) string {
	t.Helper()
	for _, h := range rel.Hooks {
		if h.Kind == kind && h.Name == name {
			return h.Manifest
		}
	}
	t.Fatalf("no hook %s/%s", kind, name)
	return ""
}

func TestHooks(t *testing.T) {
	t.Run("2.1.0", func(t *testing.T) {
		rel := mustRender(t, "2.1.0", nil).rel
		got := hooksByEvent(rel)
		want := map[release.HookEvent][]string{
			release.HookPreUpgrade: {"Job/" + backupPVC, "PersistentVolumeClaim/" + backupPVC},
			release.HookPreRollback: {
				"Job/" + relName + "-id-rollback-clean",
				"Role/" + relName + "-id-rollback",
				"RoleBinding/" + relName + "-id-rollback",
				"ServiceAccount/" + relName + "-id-rollback",
			},
			release.HookPostRollback: {"Job/" + relName + "-id-rollback-restore"},
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("hooks = %v, want %v", got, want)
		}

		backup := decode[batchv1.Job](t, hookManifest(t, rel, "Job", backupPVC))
		if claim := claimOf(backup.Spec.Template.Spec); claim != backupPVC {
			t.Errorf("pre-upgrade backup Job mounts claim %q, want %q", claim, backupPVC)
		}
		if cmd := strings.Join(backup.Spec.Template.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "pg_dump --clean --no-owner --no-acl") {
			t.Errorf("pre-upgrade backup Job does not pg_dump: %s", cmd)
		}
		decode[corev1.PersistentVolumeClaim](t, hookManifest(t, rel, "PersistentVolumeClaim", backupPVC))

		clean := decode[batchv1.Job](t, hookManifest(t, rel, "Job", relName+"-id-rollback-clean"))
		cmd := strings.Join(clean.Spec.Template.Spec.Containers[0].Command, " ")
		for _, sts := range []string{keycloak, postgres} {
			if !strings.Contains(cmd, "kubectl delete --ignore-not-found statefulset "+sts) {
				t.Errorf("pre-rollback Job does not delete StatefulSet %s: %s", sts, cmd)
			}
		}
		if sa := clean.Spec.Template.Spec.ServiceAccountName; sa != relName+"-id-rollback" {
			t.Errorf("pre-rollback Job runs as %q, want the hook ServiceAccount", sa)
		}
		role := decode[rbacv1.Role](t, hookManifest(t, rel, "Role", relName+"-id-rollback"))
		if len(role.Rules) != 1 || !slices.Contains(role.Rules[0].Verbs, "delete") || !slices.Equal(role.Rules[0].ResourceNames, []string{keycloak, postgres}) {
			t.Errorf("pre-rollback Role rules = %+v, want delete on both StatefulSets", role.Rules)
		}
		decode[rbacv1.RoleBinding](t, hookManifest(t, rel, "RoleBinding", relName+"-id-rollback"))
		decode[corev1.ServiceAccount](t, hookManifest(t, rel, "ServiceAccount", relName+"-id-rollback"))

		restore := decode[batchv1.Job](t, hookManifest(t, rel, "Job", relName+"-id-rollback-restore"))
		if claim := claimOf(restore.Spec.Template.Spec); claim != backupPVC {
			t.Errorf("post-rollback restore Job mounts claim %q, want %q (the one only pre-upgrade creates)", claim, backupPVC)
		}
		if cmd := strings.Join(restore.Spec.Template.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "psql") || !strings.Contains(cmd, "/backup/backup.sql") {
			t.Errorf("post-rollback Job does not psql-restore /backup/backup.sql: %s", cmd)
		}
		for _, j := range []batchv1.Job{backup, clean, restore} {
			if !hasKwokToleration(j.Spec.Template.Spec.Tolerations) {
				t.Errorf("hook Job %s: pod lacks the kwok toleration", j.Name)
			}
		}

		if off := mustRender(t, "2.1.0", map[string]any{"hooks": map[string]any{"enabled": false}}).rel; len(off.Hooks) != 0 {
			t.Errorf("hooks.enabled=false still renders hooks %v", hooksByEvent(off))
		}
	})
	t.Run("3.0.0", func(t *testing.T) {
		if rel := mustRender(t, "3.0.0", nil).rel; len(rel.Hooks) != 0 {
			t.Errorf("3.0.0 renders hooks %v, want none", hooksByEvent(rel))
		}
	})
}

func claimOf(spec corev1.PodSpec) string {
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

func TestFaults(t *testing.T) {
	images := map[string]map[string]string{
		"2.1.0": {keycloak: "alfresco/alfresco-identity-service:1.3", postgres: "postgres:11.7"},
		"3.0.0": {keycloak: "alfresco/alfresco-identity-service:1.4.0", postgres: "postgres:11.7"},
	}
	targets := map[string]string{"keycloak": keycloak, "postgresql": postgres}
	faults := []string{"crash-after-ready", "crashloop", "image-pull", "create-container-config-error", "unschedulable"}
	for _, v := range versions {
		for target, targetName := range targets {
			for _, fault := range faults {
				t.Run(fmt.Sprintf("%s/%s/%s", v, target, fault), func(t *testing.T) {
					vals := map[string]any{"fault": fault, "faultTarget": target, "faultDelay": "10s"}
					r := mustRender(t, v, vals)
					for _, name := range []string{keycloak, postgres} {
						hit := name == targetName
						pod := r.statefulSet(t, name).Spec.Template

						wantLabel := ""
						if hit && slices.Contains(kwokFaults, fault) {
							wantLabel = fault
						}
						if got := pod.Labels[faultKey]; got != wantLabel {
							t.Errorf("%s: label %s = %q, want %q", name, faultKey, got, wantLabel)
						}

						wantImage := images[v][name]
						if hit && fault == "image-pull" {
							wantImage = badImage
						}
						if got := pod.Spec.Containers[0].Image; got != wantImage {
							t.Errorf("%s: image = %q, want %q", name, got, wantImage)
						}

						var wantSelector map[string]string
						if hit && fault == "unschedulable" {
							wantSelector = map[string]string{"identity-upgrade.test/unschedulable": "true"}
						}
						if got := pod.Spec.NodeSelector; !maps.Equal(got, wantSelector) {
							t.Errorf("%s: nodeSelector = %v, want %v", name, got, wantSelector)
						}
						if !hasKwokToleration(pod.Spec.Tolerations) {
							t.Errorf("%s: the kwok toleration is gone", name)
						}

						missing := ""
						for _, e := range pod.Spec.Containers[0].Env {
							if e.Name == "IDENTITY_UPGRADE_TEST_FAULT" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
								missing = e.ValueFrom.SecretKeyRef.Name
							}
						}
						wantMissing := ""
						if hit && fault == "create-container-config-error" {
							wantMissing = relName + "-fault-missing"
						}
						if missing != wantMissing {
							t.Errorf("%s: env from missing Secret = %q, want %q", name, missing, wantMissing)
						}
						if _, ok := r.objects["Secret/"+relName+"-fault-missing"]; ok {
							t.Errorf("the chart renders the Secret that must be missing")
						}

						wantDelay := ""
						if hit && fault == "crash-after-ready" {
							wantDelay = "10s"
						}
						if got := pod.Annotations[delayKey]; got != wantDelay {
							t.Errorf("%s: annotation %s = %q, want %q", name, delayKey, got, wantDelay)
						}
					}
				})
			}
		}
	}
}

func TestFaultRenderErrors(t *testing.T) {
	cases := []struct {
		name string
		vals map[string]any
		want string
	}{
		{"template-error on keycloak", map[string]any{"fault": "template-error"}, "fault template-error: this chart was asked to fail rendering"},
		{"template-error on postgresql", map[string]any{"fault": "template-error", "faultTarget": "postgresql"}, "fault template-error: this chart was asked to fail rendering"},
		{"unknown fault", map[string]any{"fault": "bogus"}, `values: fault "bogus" is unknown`},
		{"unknown target", map[string]any{"fault": "crashloop", "faultTarget": "nginx"}, `values: faultTarget "nginx" is unknown`},
	}
	for _, v := range versions {
		for _, c := range cases {
			t.Run(v+"/"+c.name, func(t *testing.T) {
				_, err := render(t, v, c.vals)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("render with %v: error = %v, want one containing %q", c.vals, err, c.want)
				}
			})
		}
	}
}

func TestIngress(t *testing.T) {
	on := map[string]any{"ingress": map[string]any{"enabled": true, "hostName": "id.example.test"}}

	r := mustRender(t, "2.1.0", on)
	doc, ok := r.objects["Ingress/"+keycloak]
	if !ok {
		t.Fatalf("2.1.0 with ingress.enabled=true renders no Ingress %s: %v", keycloak, slices.Sorted(maps.Keys(r.objects)))
	}
	old := decode[extensionsv1beta1.Ingress](t, doc)
	if old.APIVersion != "extensions/v1beta1" {
		t.Errorf("2.1.0 Ingress apiVersion = %q, want extensions/v1beta1 (like the real chart)", old.APIVersion)
	}
	if b := old.Spec.Rules[0].HTTP.Paths[0].Backend; b.ServiceName != keycloak || b.ServicePort.IntValue() != 80 {
		t.Errorf("2.1.0 Ingress backend = %+v, want %s:80", b, keycloak)
	}

	// 3.0.0 still renders the removed API, with a pathType.
	r = mustRender(t, "3.0.0", on)
	doc = r.objects["Ingress/"+keycloak]
	if ing := decode[extensionsv1beta1.Ingress](t, doc); ing.APIVersion != "extensions/v1beta1" {
		t.Errorf("3.0.0 Ingress apiVersion = %q, want extensions/v1beta1 (like the real chart)", ing.APIVersion)
	}

	// Converted for a cluster that serves only networking.k8s.io/v1, each is a valid v1 Ingress
	// to the same backend.
	for v, pathType := range map[string]networkingv1.PathType{"2.1.0": networkingv1.PathTypeImplementationSpecific, "3.0.0": networkingv1.PathTypePrefix} {
		converted, convs, err := kubeapis.Removed().ConvertManifest(mustRender(t, v, on).rel.Manifest, servedV137)
		if err != nil || len(convs) != 1 || convs[0].Object() != "Ingress/"+keycloak || convs[0].To != "networking.k8s.io/v1" {
			t.Fatalf("%s: convert: %v %+v", v, err, convs)
		}
		ing := decode[networkingv1.Ingress](t, objectsOf(t, converted)["Ingress/"+keycloak])
		p := ing.Spec.Rules[0].HTTP.Paths[0]
		if p.Path != "/auth" || p.PathType == nil || *p.PathType != pathType || p.Backend.Service == nil || p.Backend.Service.Name != keycloak || p.Backend.Service.Port.Number != 80 {
			t.Errorf("%s: converted Ingress path = %+v, want %s /auth -> %s:80", v, p, pathType, keycloak)
		}
	}
}

// servedV137 is what a Kubernetes 1.37 cluster serves of the kinds the charts render.
func servedV137(apiVersion, kind string) bool {
	return !strings.Contains(apiVersion, "beta")
}

// objectsOf is a manifest's documents by "Kind/name"; an object rendered twice fails the test.
func objectsOf(t *testing.T, manifest string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("manifest is not YAML: %v\n%s", err, doc)
		}
		key := head.Kind + "/" + head.Metadata.Name
		if _, dup := out[key]; dup {
			t.Fatalf("the manifest has %s twice", key)
		}
		out[key] = doc
	}
	return out
}

// TestKeycloakSettings: 2.1.0 reads Keycloak's own settings under keycloak.keycloak and 3.0.0
// under keycloak, as the real charts do, so that values given to one are dropped by the other.
func TestKeycloakSettings(t *testing.T) {
	settings := map[string]any{
		"replicas":  2,
		"resources": map[string]any{"limits": map[string]any{"memory": "2Gi"}},
		"extraArgs": "-Dkeycloak.profile.feature.upload_scripts=enabled",
		"extraEnv":  "- name: KEYCLOAK_LOGLEVEL\n  value: {{ .Release.Name | upper }}\n",
		"extraInitContainers": []any{map[string]any{"name": "theme", "image": "acme/theme:1",
			"volumeMounts": []any{map[string]any{"name": "theme", "mountPath": "/theme"}}}},
		"extraVolumes":      []any{map[string]any{"name": "theme", "emptyDir": map[string]any{}}},
		"extraVolumeMounts": []any{map[string]any{"name": "theme", "mountPath": "/opt/jboss/keycloak/themes/acme"}},
	}
	nested := map[string]map[string]any{
		"2.1.0": {"keycloak": map[string]any{"keycloak": settings}},
		"3.0.0": {"keycloak": settings},
	}
	for _, v := range versions {
		for given, vals := range nested {
			t.Run(v+" given as for "+given, func(t *testing.T) {
				kc := mustRender(t, v, vals).statefulSet(t, keycloak)
				pod := kc.Spec.Template.Spec
				c := pod.Containers[0]
				read := v == given
				if got := *kc.Spec.Replicas == 2; got != read {
					t.Errorf("replicas %d", *kc.Spec.Replicas)
				}
				if got := c.Resources.Limits.Memory().String() == "2Gi"; got != read {
					t.Errorf("resources %+v", c.Resources)
				}
				if got := slices.Equal(c.Args, []string{"-Dkeycloak.profile.feature.upload_scripts=enabled"}); got != read {
					t.Errorf("args %v", c.Args)
				}
				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				if got := env["KEYCLOAK_LOGLEVEL"] == "IDSVC"; got != read {
					t.Errorf("extraEnv (templated text): env %v", env)
				}
				if got := len(pod.InitContainers) == 1 && pod.InitContainers[0].Image == "acme/theme:1"; got != read {
					t.Errorf("extraInitContainers: %+v", pod.InitContainers)
				}
				if got := len(pod.Volumes) == 1 && pod.Volumes[0].EmptyDir != nil && len(c.VolumeMounts) == 1 &&
					c.VolumeMounts[0].MountPath == "/opt/jboss/keycloak/themes/acme"; got != read {
					t.Errorf("extraVolumes, extraVolumeMounts: %+v, %+v", pod.Volumes, c.VolumeMounts)
				}
			})
		}
	}

	// The realm import: 2.1.0 as a JVM argument, 3.0.0 as the env variable KEYCLOAK_IMPORT
	// (given as a list).
	kc := mustRender(t, "3.0.0", map[string]any{"keycloak": map[string]any{
		"extraEnv": []any{map[string]any{"name": "KEYCLOAK_IMPORT", "value": "/realm/alfresco-realm.json"}},
	}}).statefulSet(t, keycloak)
	if e := kc.Spec.Template.Spec.Containers[0].Env; e[len(e)-1].Name != "KEYCLOAK_IMPORT" || e[len(e)-1].Value != "/realm/alfresco-realm.json" {
		t.Errorf("3.0.0 extraEnv list: env %+v", e)
	}

	// The bundled PostgreSQL: deployPostgres in 2.1.0, postgresql.enabled in 3.0.0.
	off := map[string]map[string]any{
		"2.1.0": {"keycloak": map[string]any{"keycloak": map[string]any{"persistence": map[string]any{"deployPostgres": false}}}},
		"3.0.0": {"keycloak": map[string]any{"postgresql": map[string]any{"enabled": false}}},
	}
	for _, v := range versions {
		for given, vals := range off {
			r := mustRender(t, v, vals)
			_, sts := r.objects["StatefulSet/"+postgres]
			_, svc := r.objects["Service/"+postgres]
			if want := v != given; sts != want || svc != want {
				t.Errorf("chart %s given %s's switch off: postgres StatefulSet %v, Service %v; want %v", v, given, sts, svc, want)
			}
		}
	}

	// Only 3.0.0 pulls with quay-registry-secret.
	for v, want := range map[string][]corev1.LocalObjectReference{"2.1.0": nil, "3.0.0": {{Name: "quay-registry-secret"}}} {
		if got := mustRender(t, v, nil).statefulSet(t, keycloak).Spec.Template.Spec.ImagePullSecrets; !slices.Equal(got, want) {
			t.Errorf("chart %s: imagePullSecrets %v, want %v", v, got, want)
		}
	}
}

// TestOptionalPartsUseRemovedAPIs: 3.0.0's PodDisruptionBudget and HorizontalPodAutoscaler render
// policy/v1beta1 and autoscaling/v2beta2, as the real chart's do, and convert to valid v1 / v2.
func TestOptionalPartsUseRemovedAPIs(t *testing.T) {
	r := mustRender(t, "3.0.0", map[string]any{"podDisruptionBudget": map[string]any{"enabled": true}, "autoscaling": map[string]any{"enabled": true}})
	for key, apiVersion := range map[string]string{"PodDisruptionBudget/" + keycloak: "policy/v1beta1", "HorizontalPodAutoscaler/" + keycloak: "autoscaling/v2beta2"} {
		if !strings.Contains(r.objects[key], "apiVersion: "+apiVersion+"\n") {
			t.Errorf("%s is not rendered with %s:\n%s", key, apiVersion, r.objects[key])
		}
	}
	converted, convs, err := kubeapis.Removed().ConvertManifest(r.rel.Manifest, servedV137)
	if err != nil || len(convs) != 2 {
		t.Fatalf("convert: %v %+v", err, convs)
	}
	objs := objectsOf(t, converted)
	pdb := decode[policyv1.PodDisruptionBudget](t, objs["PodDisruptionBudget/"+keycloak])
	if pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "keycloak" {
		t.Errorf("pdb %+v", pdb.Spec)
	}
	hpa := decode[autoscalingv2.HorizontalPodAutoscaler](t, objs["HorizontalPodAutoscaler/"+keycloak])
	if hpa.Spec.ScaleTargetRef.Name != keycloak || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("hpa %+v", hpa.Spec)
	}
}

func TestValues(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			r := mustRender(t, v, map[string]any{
				"replicaCount": 3,
				"persistence":  map[string]any{"existingClaim": "alfresco-volume-claim"},
				"postgresql": map[string]any{
					"host":        "db.example.test",
					"persistence": map[string]any{"enabled": true, "size": "2Gi"},
				},
				"tolerations": []any{},
			})
			kc := r.statefulSet(t, keycloak)
			if kc.Spec.Replicas == nil || *kc.Spec.Replicas != 3 {
				t.Errorf("replicaCount=3: replicas = %v", kc.Spec.Replicas)
			}
			if claim := claimOf(kc.Spec.Template.Spec); claim != "alfresco-volume-claim" {
				t.Errorf("persistence.existingClaim: keycloak mounts claim %q, want alfresco-volume-claim", claim)
			}
			if m := kc.Spec.Template.Spec.Containers[0].VolumeMounts; len(m) != 1 || m[0].MountPath != "/opt/jboss/keycloak/standalone/data" {
				t.Errorf("persistence.existingClaim: mounts = %+v", m)
			}
			if tol := kc.Spec.Template.Spec.Tolerations; len(tol) != 0 {
				t.Errorf("tolerations=[]: keycloak still tolerates %+v", tol)
			}
			pg := r.statefulSet(t, postgres)
			if len(pg.Spec.VolumeClaimTemplates) != 1 || pg.Spec.VolumeClaimTemplates[0].Name != "data" ||
				pg.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "2Gi" || len(pg.Spec.Template.Spec.Volumes) != 0 {
				t.Errorf("postgresql.persistence.enabled: claims = %+v, volumes = %+v", pg.Spec.VolumeClaimTemplates, pg.Spec.Template.Spec.Volumes)
			}
			secret := decode[corev1.Secret](t, r.objects["Secret/"+dbSecret])
			if got := string(secret.Data["DB_ADDR"]); got != "db.example.test" {
				t.Errorf("postgresql.host: DB_ADDR = %q (raw %s)", got, base64.StdEncoding.EncodeToString(secret.Data["DB_ADDR"]))
			}
		})
	}
}

// TestLint runs helm's own linter (as `helm lint --kube-version 1.37` would): no errors or
// warnings with the defaults or any fault, and on 2.1.0 the Ingress is flagged as removed.
func TestLint(t *testing.T) {
	kube := &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	for _, v := range versions {
		for _, fault := range []string{"", "crash-after-ready", "crashloop", "image-pull", "create-container-config-error", "unschedulable"} {
			t.Run(v+"/"+fault, func(t *testing.T) {
				lint := action.NewLint()
				lint.Namespace = relNS
				lint.KubeVersion = kube
				res := lint.Run([]string{chartDir(v)}, map[string]any{"fault": fault})
				for _, m := range res.Messages {
					if m.Severity >= support.WarningSev {
						t.Errorf("lint: %s", m)
					}
				}
			})
		}
	}
	for _, v := range versions {
		lint := action.NewLint()
		lint.KubeVersion = kube
		res := lint.Run([]string{chartDir(v)}, map[string]any{"ingress": map[string]any{"enabled": true}})
		flagged := false
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev && strings.Contains(m.Err.Error(), "extensions/v1beta1") {
				flagged = true
			}
		}
		if !flagged {
			t.Errorf("lint of %s with ingress.enabled=true does not flag extensions/v1beta1: %v", v, res.Messages)
		}
	}
}
