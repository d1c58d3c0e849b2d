package manifest_test

import (
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
)

func TestWorkloads(t *testing.T) {
	objs, err := manifest.Objects(`
apiVersion: v1
kind: Service
metadata: {name: db}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {app: postgresql-id}}
spec:
  template:
    metadata: {labels: {app: postgresql-id, role: master}}
    spec:
      initContainers: [{name: init, image: busybox}]
      containers: [{name: db, image: postgres:11.7}, {name: metrics, image: exporter:1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: batch/v1
kind: Job
metadata: {name: hook}
---
apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: old-group}
`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.Workloads(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].String() != "StatefulSet/db" || got[1].String() != "Deployment/web" {
		t.Fatalf("Workloads = %v, want StatefulSet/db and Deployment/web", got)
	}
	db := got[0]
	if db.Labels["app"] != "postgresql-id" || db.PodLabels["role"] != "master" || strings.Join(db.Images, " ") != "postgres:11.7 exporter:1" {
		t.Errorf("StatefulSet/db read as %+v", db)
	}

	bad, err := manifest.Objects("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {template: 3}\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Workloads(bad); err == nil || !strings.Contains(err.Error(), "StatefulSet/x: spec.template is not an object") {
		t.Errorf("a template that is not an object: %v", err)
	}
}

// TestClassify: what makes a workload PostgreSQL (its image, or a word of an app label), what
// makes it Keycloak, and what never counts. The cases marked "was" are where the port-forward's
// auto target used a rule of its own (an image name containing "postgres" anywhere, or any
// label whose value contains "postgresql"): the quiesce's rule won, so that the database the
// forward reaches is always one the quiesce never scales, and a Keycloak workload that names
// its database in a label is still Keycloak.
func TestClassify(t *testing.T) {
	app := map[string]string{"app.kubernetes.io/instance": "identity"}
	with := func(labels map[string]string, images ...string) manifest.Workload {
		return manifest.Workload{Kind: manifest.StatefulSet, Name: "w", PodLabels: labels, Images: images}
	}
	tests := []struct {
		name string
		w    manifest.Workload
		want manifest.App
		why  string
	}{
		{"postgres image", with(app, "postgres:11.7"), manifest.PostgreSQL, "image postgres:11.7"},
		{"bitnami/postgresql by digest", with(app, "docker.io/bitnami/postgresql@sha256:"+strings.Repeat("0", 64)), manifest.PostgreSQL, "image docker.io"},
		{"postgres-exporter sidecar", with(app, "app:1", "quay.io/prometheuscommunity/postgres-exporter:0.15"), manifest.PostgreSQL, "image quay.io"},
		{"app label postgresql-id", with(map[string]string{"app": "postgresql-id"}, "registry.example/db:1"), manifest.PostgreSQL, "pod label app=postgresql-id"},
		{"object label only", manifest.Workload{Kind: manifest.StatefulSet, Labels: map[string]string{"app.kubernetes.io/name": "keycloak-PostgreSQL"}}, manifest.PostgreSQL, "label app.kubernetes.io/name=keycloak-PostgreSQL"},
		{"postgres wins over keycloak", with(map[string]string{"app": "keycloak"}, "jboss/keycloak:11", "postgres:17"), manifest.PostgreSQL, "image postgres:17"},
		{"app label postgres (was: not PostgreSQL)", with(map[string]string{"app": "postgres"}, "registry.example/db:1"), manifest.PostgreSQL, "pod label app=postgres"},

		{"keycloak label", with(map[string]string{"app.kubernetes.io/name": "keycloak"}), manifest.Keycloak, "pod label app.kubernetes.io/name=keycloak"},
		{"fullname label", with(map[string]string{"app": "identity-id-keycloak"}), manifest.Keycloak, "pod label app=identity-id-keycloak"},
		{"keycloak image", with(app, "quay.io/keycloak/keycloak:26.1"), manifest.Keycloak, "image quay.io/keycloak/keycloak:26.1"},
		{"alfresco image", with(app, "alfresco/alfresco-identity-service:1.3"), manifest.Keycloak, "image alfresco"},
		{"postgres only in an init container", manifest.Workload{Kind: manifest.StatefulSet, PodLabels: map[string]string{"app": "keycloak"}, Images: []string{"jboss/keycloak:11"}}, manifest.Keycloak, "pod label app=keycloak"},
		{"keycloak naming its database in a label (was: PostgreSQL)", with(map[string]string{"app": "keycloak", "database": "postgresql"}, "jboss/keycloak:11"), manifest.Keycloak, "pod label app=keycloak"},
		{"part-of a postgresql stack (was: PostgreSQL)", with(map[string]string{"app.kubernetes.io/part-of": "postgresql-ha"}, "registry.example/web:1"), manifest.Other, ""},
		{"crunchy-postgres image (was: PostgreSQL)", with(app, "registry.developers.crunchydata.com/crunchydata/crunchy-postgres:ubi8-16"), manifest.Other, ""},

		{"name only", manifest.Workload{Kind: manifest.StatefulSet, Name: "keycloak-postgresql-id"}, manifest.Other, ""},
		{"registry host named postgres", with(app, "postgres:5000/app:1"), manifest.Other, ""},
		{"keycloak-config-cli", with(map[string]string{"app": "keycloak-config-cli"}, "bitnami/keycloak-config-cli:6"), manifest.Other, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := manifest.Classify(tt.w)
			if got != tt.want || !strings.HasPrefix(why, tt.why) || (tt.why == "") != (why == "") {
				t.Errorf("Classify = %s (%q), want %s (%q...)", got, why, tt.want, tt.why)
			}
		})
	}
}
