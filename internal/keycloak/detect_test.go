package keycloak

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func chartDir(version string) string {
	return filepath.Join("..", "..", "testdata", "charts", "identity", version)
}

// renderChart renders a test chart of testdata/charts/identity client-side, as helm installs
// it, and returns the manifest helm would store for the release (hooks left out).
func renderChart(t *testing.T, version, release string, vals map[string]any) string {
	t.Helper()
	ch, err := loader.Load(chartDir(version))
	if err != nil {
		t.Fatalf("load chart %s: %v", version, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = release
	install.Namespace = "identity"
	install.KubeVersion = &chartutil.KubeVersion{Version: testworld.KubeVersion, Major: "1", Minor: "37"}
	rel, err := install.Run(ch, vals)
	if err != nil {
		t.Fatalf("render chart %s as %q: %v", version, release, err)
	}
	return rel.Manifest
}

// TestDetectCharts: both test charts, as release "keycloak" (the database StatefulSet is then
// keycloak-postgresql-id) and as "identity", give their Keycloak StatefulSet and nothing else,
// also with a fault that replaces one workload's image.
func TestDetectCharts(t *testing.T) {
	for _, version := range []string{"2.1.0", "3.0.0"} {
		for _, release := range []string{"keycloak", "identity"} {
			for _, vals := range []map[string]any{
				nil,
				{"fault": "image-pull", "faultTarget": "keycloak"},
				{"fault": "image-pull", "faultTarget": "postgresql"},
			} {
				t.Run(version+"/"+release+"/"+faultName(vals), func(t *testing.T) {
					m := renderChart(t, version, release, vals)
					if !strings.Contains(m, "name: "+release+"-postgresql-id\n") {
						t.Fatalf("the manifest has no StatefulSet %s-postgresql-id:\n%s", release, m)
					}
					got, err := Detect(m, "")
					if err != nil {
						t.Fatalf("Detect: %v", err)
					}
					want := []rollout.Scaled{{Kind: StatefulSet, Name: release + "-id-keycloak"}}
					if !slices.Equal(got, want) {
						t.Errorf("Detect = %v, want %v", got, want)
					}
					_, err = Detect(m, "statefulset/"+release+"-postgresql-id")
					if err == nil || !strings.Contains(err.Error(), "`workload` input") || !strings.Contains(err.Error(), "PostgreSQL") {
						t.Errorf("Detect of the database named explicitly: err = %v, want a refusal naming the `workload` input", err)
					}
				})
			}
		}
	}
}

func faultName(vals map[string]any) string {
	if vals == nil {
		return "healthy"
	}
	return vals["fault"].(string) + "-" + vals["faultTarget"].(string)
}

// withImages sets the images of a workload's containers and, with init non-nil, its init
// containers.
func withImages[T *appsv1.StatefulSet | *appsv1.Deployment](o T, images []string, init []string) T {
	var spec *corev1.PodSpec
	switch w := any(o).(type) {
	case *appsv1.StatefulSet:
		spec = &w.Spec.Template.Spec
	case *appsv1.Deployment:
		spec = &w.Spec.Template.Spec
	}
	spec.Containers = nil
	for i, image := range images {
		spec.Containers = append(spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: image})
	}
	for i, image := range init {
		spec.InitContainers = append(spec.InitContainers, corev1.Container{Name: "i" + string(rune('0'+i)), Image: image})
	}
	return o
}

// withObjectLabels gives a workload labels on its metadata that differ from its pod template's.
func withObjectLabels[T *appsv1.StatefulSet | *appsv1.Deployment](o T, labels map[string]string) T {
	switch w := any(o).(type) {
	case *appsv1.StatefulSet:
		w.Labels = labels
	case *appsv1.Deployment:
		w.Labels = labels
	}
	return o
}

// TestDetectEvidence: what makes a workload Keycloak (its labels, its pod template's labels, a
// Keycloak image) and what never does (its name alone), and that a PostgreSQL image or label
// excludes a workload whatever else matches.
func TestDetectEvidence(t *testing.T) {
	none := map[string]string{"app.kubernetes.io/instance": "keycloak"}
	tests := []struct {
		name   string
		object runtime.Object
		want   bool
	}{
		// Names alone.
		{"name only: keycloak-server", statefulSet("keycloak-server", 1, none), false},
		{"name only: identity-id-keycloak", deployment("identity-id-keycloak", 1, map[string]string{"app": "web"}), false},
		{"name and instance label of a release named keycloak", statefulSet("keycloak-web", 1, map[string]string{"app": "keycloak-web", "release": "keycloak"}), false},

		// Labels.
		{"app.kubernetes.io/name keycloak", statefulSet("a", 1, map[string]string{"app.kubernetes.io/name": "keycloak"}), true},
		{"app.kubernetes.io/name KeyCloak", deployment("a", 1, map[string]string{"app.kubernetes.io/name": "KeyCloak"}), true},
		{"app.kubernetes.io/name keycloakx", statefulSet("a", 1, map[string]string{"app.kubernetes.io/name": "keycloakx"}), true},
		{"app keycloak", statefulSet("a", 1, map[string]string{"app": "keycloak"}), true},
		{"app fullname-style <release>-id-keycloak", statefulSet("a", 1, map[string]string{"app": "identity-id-keycloak"}), true},
		{"app alfresco-identity-service", statefulSet("a", 1, map[string]string{"app": "alfresco-identity-service"}), true},
		{"component keycloak", deployment("a", 1, map[string]string{"app.kubernetes.io/name": "identity", "app.kubernetes.io/component": "keycloak"}), true},
		{"pod template label only", withObjectLabels(statefulSet("a", 1, map[string]string{"app.kubernetes.io/name": "keycloak"}), nil), true},
		{"object label only", withObjectLabels(statefulSet("a", 1, none), map[string]string{"app.kubernetes.io/name": "keycloak"}), true},
		{"app keycloak-web (a release prefix)", statefulSet("a", 1, map[string]string{"app": "keycloak-web"}), false},
		{"app keycloak-config-cli", deployment("a", 1, map[string]string{"app": "keycloak-config-cli"}), false},
		{"a label other than name, app, component", statefulSet("a", 1, map[string]string{"app.kubernetes.io/part-of": "keycloak"}), false},

		// Images.
		{"image jboss/keycloak", withImages(statefulSet("a", 1, none), []string{"jboss/keycloak:11.0.3"}, nil), true},
		{"image quay.io/keycloak/keycloak by digest", withImages(deployment("a", 1, none), []string{"quay.io/keycloak/keycloak@sha256:" + strings.Repeat("0", 64)}, nil), true},
		{"image alfresco/alfresco-identity-service", withImages(statefulSet("a", 1, none), []string{"alfresco/alfresco-identity-service:1.3"}, nil), true},
		{"image quay.io/alfresco/alfresco-identity-service", withImages(statefulSet("a", 1, none), []string{"quay.io/alfresco/alfresco-identity-service:1.2-Cristina"}, nil), true},
		{"image on a registry with a port", withImages(statefulSet("a", 1, none), []string{"localhost:5000/keycloak:26.1"}, nil), true},
		{"image docker.io/bitnami/keycloak as a sidecar", withImages(statefulSet("a", 1, none), []string{"busybox:1", "docker.io/bitnami/keycloak:26"}, nil), true},
		{"image bitnami/keycloak-config-cli", withImages(deployment("a", 1, none), []string{"bitnami/keycloak-config-cli:6"}, nil), false},
		{"image keycloak in an init container only", withImages(deployment("a", 1, none), []string{"example.invalid/app:1"}, []string{"quay.io/keycloak/keycloak:26"}), false},
		{"registry host named keycloak", withImages(deployment("a", 1, none), []string{"keycloak:5000/app:1"}, nil), false},

		// PostgreSQL, whatever else matches.
		{"postgres image with a keycloak label", withImages(statefulSet("a", 1, map[string]string{"app.kubernetes.io/name": "keycloak"}), []string{"postgres:11.7"}, nil), false},
		{"docker.io/library/postgres by digest with a keycloak label", withImages(statefulSet("a", 1, map[string]string{"app": "keycloak"}), []string{"docker.io/library/postgres@sha256:" + strings.Repeat("1", 64)}, nil), false},
		{"bitnami/postgresql image", withImages(statefulSet("a", 1, map[string]string{"app": "identity-id-keycloak"}), []string{"docker.io/bitnami/postgresql:16.4.0"}, nil), false},
		{"postgres sidecar in a Keycloak pod", withImages(statefulSet("a", 1, map[string]string{"app": "keycloak"}), []string{"quay.io/keycloak/keycloak:26", "postgres:17"}, nil), false},
		{"postgresql label with a keycloak image", withImages(statefulSet("a", 1, map[string]string{"app.kubernetes.io/name": "postgresql"}), []string{"quay.io/keycloak/keycloak:26"}, nil), false},
		{"app postgresql-id with a keycloak image", withImages(statefulSet("a", 1, map[string]string{"app": "postgresql-id"}), []string{"jboss/keycloak:11"}, nil), false},
		{"app keycloak-postgresql on the object only", withObjectLabels(withImages(statefulSet("a", 1, none), []string{"jboss/keycloak:11"}, nil), map[string]string{"app": "keycloak-postgresql"}), false},
		{"postgres image in an init container of Keycloak (waits for the database)", withImages(statefulSet("a", 1, map[string]string{"app": "keycloak"}), []string{"jboss/keycloak:11"}, []string{"postgres:11"}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := manifestOf(t, tt.object)
			got, err := Detect(m, "")
			if tt.want {
				if err != nil || len(got) != 1 {
					t.Errorf("Detect = %v, %v; want the workload\n%s", got, err, m)
				}
				return
			}
			if err == nil {
				t.Errorf("Detect = %v, want none (an error)\n%s", got, m)
			} else if !strings.Contains(err.Error(), "`workload` input") {
				t.Errorf("Detect: error %q does not name the `workload` input", err)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	pg := statefulSet("identity-postgresql-id", 1, map[string]string{"app": "postgresql-id", "release": "identity"})
	kc := statefulSet("identity-id-keycloak", 1, map[string]string{"app.kubernetes.io/name": "keycloak", "app.kubernetes.io/instance": "identity"})
	kcByLabel := deployment("identity-server", 1, map[string]string{"app.kubernetes.io/name": "KeyCloak"})
	kcByComponent := deployment("iam", 1, map[string]string{"app.kubernetes.io/name": "iam", "app.kubernetes.io/component": "keycloak"})
	svc := service("identity-keycloak-http", map[string]string{"app": "keycloak"}) // a Service: never a workload
	plain := deployment("identity-web", 1, map[string]string{"app": "web"})
	db := withImages(statefulSet("db", 1, map[string]string{"app": "db"}), []string{"postgres:11.7"}, nil)

	tests := []struct {
		name     string
		manifest string
		workload string
		want     []rollout.Scaled
		wantErr  []string
	}{
		{
			name:     "auto, not postgres or a service",
			manifest: manifestOf(t, pg, svc, kc),
			want:     []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "auto by app.kubernetes.io/name label, any case",
			manifest: manifestOf(t, pg, kcByLabel, plain),
			want:     []rollout.Scaled{{Kind: Deployment, Name: "identity-server"}},
		},
		{
			name:     "auto by component label, several in manifest order",
			manifest: manifestOf(t, kcByComponent, pg, kc),
			want:     []rollout.Scaled{{Kind: Deployment, Name: "iam"}, {Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "auto finds none",
			manifest: manifestOf(t, pg, svc, plain),
			wantErr:  []string{"`workload` input", "workloads: StatefulSet/identity-postgresql-id, Deployment/identity-web", "PostgreSQL, never scaled: StatefulSet/identity-postgresql-id"},
		},
		{
			name:     "explicit Kind/name",
			manifest: manifestOf(t, pg, kc, plain),
			workload: "Deployment/identity-web",
			want:     []rollout.Scaled{{Kind: Deployment, Name: "identity-web"}},
		},
		{
			name:     "explicit short kind",
			manifest: manifestOf(t, pg, kc),
			workload: "sts/identity-id-keycloak",
			want:     []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "explicit database by its label",
			manifest: manifestOf(t, pg, kc),
			workload: "statefulset/identity-postgresql-id",
			wantErr:  []string{"workload statefulset/identity-postgresql-id (the `workload` input) runs PostgreSQL (label app=postgresql-id)", "must keep running"},
		},
		{
			name:     "explicit database by its image",
			manifest: manifestOf(t, db, kc),
			workload: "db",
			wantErr:  []string{"`workload` input", "PostgreSQL (image postgres:11.7)"},
		},
		{
			name:     "explicit bare name",
			manifest: manifestOf(t, pg, kc),
			workload: "identity-id-keycloak",
			want:     []rollout.Scaled{{Kind: StatefulSet, Name: "identity-id-keycloak"}},
		},
		{
			name:     "explicit name not in manifest",
			manifest: manifestOf(t, pg, kc),
			workload: "StatefulSet/keycloak",
			wantErr:  []string{"`workload` input", `"StatefulSet/keycloak"`, "StatefulSet/identity-id-keycloak"},
		},
		{
			name:     "explicit kind mismatch",
			manifest: manifestOf(t, pg, kc),
			workload: "Deployment/identity-id-keycloak",
			wantErr:  []string{"`workload` input", "not in the release manifest"},
		},
		{
			name:     "explicit unknown kind",
			manifest: manifestOf(t, pg, kc),
			workload: "DaemonSet/identity-id-keycloak",
			wantErr:  []string{"`workload` input", "neither StatefulSet nor Deployment"},
		},
		{
			name:     "explicit bare name of two kinds",
			manifest: manifestOf(t, statefulSet("kc", 1, map[string]string{"a": "b"}), deployment("kc", 1, map[string]string{"a": "c"})),
			workload: "kc",
			wantErr:  []string{"`workload` input", "StatefulSet/kc or Deployment/kc"},
		},
		{
			name:     "empty manifest",
			manifest: "",
			wantErr:  []string{"`workload` input", "workloads: none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.manifest, tt.workload)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Detect = %v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}
