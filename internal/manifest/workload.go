package manifest

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// App is what a workload runs, as far as an upgrade of the identity service cares: the quiesce
// scales Keycloak and never PostgreSQL, the port-forward reaches PostgreSQL.
type App string

const (
	Other      App = "other"
	Keycloak   App = "Keycloak"
	PostgreSQL App = "PostgreSQL"
)

// Kinds of workload the classifier reads (group apps).
const (
	StatefulSet = "StatefulSet"
	Deployment  = "Deployment"
)

// Workload is what the classifier reads of a StatefulSet or Deployment: its labels, its pod
// template's labels and its containers' images, never its name.
type Workload struct {
	Kind, Name string
	Labels     map[string]string // the object's
	PodLabels  map[string]string // its pod template's
	// Images are the images of the pod template's containers; init containers are left out:
	// a Keycloak pod may wait for its database with pg_isready from a postgres image, and an
	// init container copying themes from a Keycloak image does not make a workload Keycloak.
	Images []string
}

func (w Workload) String() string { return w.Kind + "/" + w.Name }

// Workloads returns the StatefulSets and Deployments of group apps among objs, in their order.
func Workloads(objs []*unstructured.Unstructured) ([]Workload, error) {
	var out []Workload
	for _, u := range objs {
		w, ok, err := WorkloadOf(u)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, w)
		}
	}
	return out, nil
}

// WorkloadOf reads u as a Workload; ok is false when u is not a named StatefulSet or
// Deployment of group apps.
func WorkloadOf(u *unstructured.Unstructured) (w Workload, ok bool, err error) {
	gvk := u.GroupVersionKind()
	if gvk.Group != "apps" || (gvk.Kind != StatefulSet && gvk.Kind != Deployment) || u.GetName() == "" {
		return Workload{}, false, nil
	}
	w = Workload{Kind: gvk.Kind, Name: u.GetName(), Labels: u.GetLabels()}
	var tmpl corev1.PodTemplateSpec
	if raw, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "template"); found {
		m, isMap := raw.(map[string]any)
		if !isMap {
			return Workload{}, false, fmt.Errorf("%s: spec.template is not an object", w)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &tmpl); err != nil {
			return Workload{}, false, fmt.Errorf("%s: spec.template: %w", w, err)
		}
	}
	w.PodLabels = tmpl.Labels
	for _, c := range tmpl.Spec.Containers {
		w.Images = append(w.Images, c.Image)
	}
	return w, true, nil
}

// Classify says what w runs, and why ("image postgres:11.7", "pod label
// app.kubernetes.io/name=keycloak"); Other with no reason when nothing says.
//
// It is PostgreSQL, whatever else matches, when one of its containers runs an image whose
// repository's last path element starts with "postgres" (postgres, bitnami/postgresql, a
// postgres-exporter sidecar), or when one of AppLabels, on the object or its pod template, has
// a word (split at "-", "_", ".") starting with "postgres" (postgresql, postgresql-id,
// keycloak-postgresql).
//
// Otherwise it is Keycloak when one of AppLabels names Keycloak (its value is one of
// keycloakNames or ends in "-" and one of them, a chart's fullname such as
// "<release>-id-keycloak", in any case), or one of its containers runs an image whose
// repository's last path element names Keycloak the same way (jboss/keycloak,
// quay.io/keycloak/keycloak, alfresco/alfresco-identity-service).
//
// Only these labels count: a label such as `database: postgresql` on a Keycloak workload says
// what it uses, not what it runs. A release named "keycloak" names its bundled database
// "keycloak-postgresql-id", which is why names never count.
func Classify(w Workload) (App, string) {
	for _, image := range w.Images {
		if strings.HasPrefix(ImageName(image), "postgres") {
			return PostgreSQL, "image " + image
		}
	}
	if why := labelEvidence(w, namesPostgres); why != "" {
		return PostgreSQL, why
	}
	if why := labelEvidence(w, namesKeycloak); why != "" {
		return Keycloak, why
	}
	for _, image := range w.Images {
		if namesKeycloak(ImageName(image)) {
			return Keycloak, "image " + image
		}
	}
	return Other, ""
}

// AppLabels are the labels whose value names what a workload runs.
var AppLabels = []string{"app.kubernetes.io/name", "app", "app.kubernetes.io/component"}

// keycloakNames are the application names of Keycloak in the charts' labels and in image
// repositories.
var keycloakNames = []string{"keycloak", "keycloakx", "alfresco-identity-service"}

// labelEvidence returns the first of AppLabels, on the object then on its pod template, whose
// lower-case value is, "" when none.
func labelEvidence(w Workload, is func(string) bool) string {
	for _, set := range []struct {
		what   string
		labels map[string]string
	}{{"label", w.Labels}, {"pod label", w.PodLabels}} {
		for _, k := range AppLabels {
			if v, ok := set.labels[k]; ok && is(strings.ToLower(v)) {
				return set.what + " " + k + "=" + v
			}
		}
	}
	return ""
}

// namesKeycloak reports whether a lower-case application name is Keycloak's: one of
// keycloakNames, or a fullname ending in "-" and one of them.
func namesKeycloak(v string) bool {
	for _, n := range keycloakNames {
		if v == n || strings.HasSuffix(v, "-"+n) {
			return true
		}
	}
	return false
}

// namesPostgres reports whether a lower-case application name has a word starting with
// "postgres".
func namesPostgres(v string) bool {
	return slices.ContainsFunc(strings.FieldsFunc(v, func(r rune) bool { return r == '-' || r == '_' || r == '.' }),
		func(word string) bool { return strings.HasPrefix(word, "postgres") })
}

// ImageName returns the last path element of an image reference's repository, in lower case:
// "keycloak" for "quay.io/keycloak/keycloak:26.1" or "localhost:5000/keycloak@sha256:…".
func ImageName(image string) string {
	repo, _, _ := strings.Cut(strings.TrimSpace(image), "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
}
