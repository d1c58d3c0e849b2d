package keycloak

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Detection reads what a workload runs, never its name: a release named "keycloak" names its
// bundled database "keycloak-postgresql-id", and scaling that down would stop the database the
// backup reads and the restore writes.
//
// A StatefulSet or Deployment is Keycloak when
//   - a label of the object or of its pod template, app.kubernetes.io/name, app or
//     app.kubernetes.io/component, names Keycloak: its value is one of keycloakNames or ends
//     in "-" and one of them (a chart's fullname, "<release>-id-keycloak"), in any case; or
//   - one of its containers runs an image whose repository's last path element names Keycloak
//     the same way (jboss/keycloak, quay.io/keycloak/keycloak, alfresco/alfresco-identity-service).
//
// It is PostgreSQL, and never Keycloak whatever else matches, when one of its containers runs
// an image whose repository's last path element starts with "postgres" (postgres,
// bitnami/postgresql, a postgres-exporter sidecar), or when one of those labels has a word
// (split at "-", "_", ".") starting with "postgres" (postgresql, postgresql-id,
// keycloak-postgresql).
//
// Init containers are left out of both: a Keycloak pod may wait for its database with
// pg_isready from a postgres image, and an init container copying themes from a Keycloak image
// does not make a workload Keycloak.

// keycloakNames are the application names of Keycloak in the charts' labels and in image
// repositories.
var keycloakNames = []string{"keycloak", "keycloakx", "alfresco-identity-service"}

// appLabels are the labels whose value names what a workload runs.
var appLabels = []string{"app.kubernetes.io/name", "app", "app.kubernetes.io/component"}

// workload is what detection reads of a StatefulSet or Deployment of a release manifest.
type workload struct {
	Kind, Name string
	Labels     map[string]string // the object's
	PodLabels  map[string]string // its pod template's
	Images     []string          // its pod template's containers', init containers left out
}

func (w workload) String() string { return w.Kind + "/" + w.Name }

// detected is a workload with the reason it was told Keycloak or PostgreSQL, for logs and
// errors ("image postgres:11.7", "pod label app.kubernetes.io/name=keycloak").
type detected struct {
	workload
	Why string
}

// selection is what detect makes of a manifest: the workloads to scale and the PostgreSQL
// workloads it leaves running.
type selection struct {
	Keycloak []detected
	Postgres []detected
}

func (s selection) scaled() []rollout.Scaled {
	out := make([]rollout.Scaled, len(s.Keycloak))
	for i, d := range s.Keycloak {
		out[i] = rollout.Scaled{Kind: d.Kind, Name: d.Name}
	}
	return out
}

// Detect finds the Keycloak workloads (StatefulSets and Deployments of group apps) of a
// release manifest (multi-document YAML, as helm stores it). With name empty, those whose
// labels or container images say Keycloak and nothing says PostgreSQL; otherwise the one named
// by the `workload` input ("Kind/name" or a bare name), which must not be PostgreSQL. Replicas
// are left unset.
func Detect(manifest, name string) ([]rollout.Scaled, error) {
	s, err := detect(manifest, name)
	if err != nil {
		return nil, err
	}
	return s.scaled(), nil
}

func detect(manifest, name string) (selection, error) {
	workloads, err := manifestWorkloads(manifest)
	if err != nil {
		return selection{}, err
	}
	var s selection
	for _, w := range workloads {
		if why := postgresEvidence(w); why != "" {
			s.Postgres = append(s.Postgres, detected{w, why})
		}
	}
	if name != "" {
		w, err := named(workloads, name)
		if err != nil {
			return selection{}, err
		}
		if why := postgresEvidence(w); why != "" {
			return selection{}, fmt.Errorf("workload %s (the `workload` input) runs PostgreSQL (%s): the database must keep running; name the Keycloak workload",
				name, why)
		}
		s.Keycloak = []detected{{w, "named by the `workload` input"}}
		return s, nil
	}
	for _, w := range workloads {
		if postgresEvidence(w) != "" {
			continue
		}
		if why := keycloakEvidence(w); why != "" {
			s.Keycloak = append(s.Keycloak, detected{w, why})
		}
	}
	if len(s.Keycloak) == 0 {
		pg := ""
		if len(s.Postgres) > 0 {
			names := make([]string, len(s.Postgres))
			for i, d := range s.Postgres {
				names[i] = d.String()
			}
			pg = "; PostgreSQL, never scaled: " + strings.Join(names, ", ")
		}
		return selection{}, fmt.Errorf("no Keycloak StatefulSet or Deployment in the release manifest (none runs a Keycloak image or has an %s label naming Keycloak; workloads: %s%s): name it with the `workload` input, e.g. statefulset/<name>",
			strings.Join(appLabels, ", "), list(workloads), pg)
	}
	return s, nil
}

// named finds the workload the `workload` input names.
func named(workloads []workload, name string) (workload, error) {
	kind, bare, err := parseName(name)
	if err != nil {
		return workload{}, err
	}
	var found []workload
	for _, w := range workloads {
		if w.Name == bare && (kind == "" || w.Kind == kind) {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return workload{}, fmt.Errorf("workload %q (the `workload` input) is not in the release manifest; its workloads: %s", name, list(workloads))
	case 1:
		return found[0], nil
	default:
		return workload{}, fmt.Errorf("workload %q (the `workload` input) names both a StatefulSet and a Deployment: write StatefulSet/%s or Deployment/%s", name, bare, bare)
	}
}

// parseName reads the `workload` input: "Kind/name" or a bare name.
func parseName(s string) (kind, name string, err error) {
	k, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return "", k, nil
	}
	switch strings.ToLower(k) {
	case "statefulset", "statefulsets", "statefulset.apps", "statefulsets.apps", "sts":
		kind = StatefulSet
	case "deployment", "deployments", "deployment.apps", "deployments.apps", "deploy":
		kind = Deployment
	default:
		return "", "", fmt.Errorf("workload %q (the `workload` input): kind %q is neither StatefulSet nor Deployment", s, k)
	}
	if n == "" {
		return "", "", fmt.Errorf("workload %q (the `workload` input): no name after the kind", s)
	}
	return kind, n, nil
}

// manifestWorkloads returns the StatefulSets and Deployments of a manifest, in its order.
func manifestWorkloads(m string) ([]workload, error) {
	objs, err := manifest.Objects(m)
	if err != nil {
		return nil, fmt.Errorf("read the release manifest: %w", err)
	}
	var out []workload
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if gvk.Group != "apps" || (gvk.Kind != StatefulSet && gvk.Kind != Deployment) || u.GetName() == "" {
			continue
		}
		w := workload{Kind: gvk.Kind, Name: u.GetName(), Labels: u.GetLabels()}
		var tmpl corev1.PodTemplateSpec
		if raw, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "template"); found {
			m, ok := raw.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("read %s of the release manifest: spec.template is not an object", w)
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &tmpl); err != nil {
				return nil, fmt.Errorf("read %s of the release manifest: spec.template: %w", w, err)
			}
		}
		w.PodLabels = tmpl.Labels
		for _, c := range tmpl.Spec.Containers {
			w.Images = append(w.Images, c.Image)
		}
		out = append(out, w)
	}
	return out, nil
}

// keycloakEvidence says why w is Keycloak, or "".
func keycloakEvidence(w workload) string {
	if why := labelEvidence(w, namesKeycloak); why != "" {
		return why
	}
	for _, image := range w.Images {
		if namesKeycloak(imageName(image)) {
			return "image " + image
		}
	}
	return ""
}

// postgresEvidence says why w is PostgreSQL, or "".
func postgresEvidence(w workload) string {
	for _, image := range w.Images {
		if strings.HasPrefix(imageName(image), "postgres") {
			return "image " + image
		}
	}
	return labelEvidence(w, namesPostgres)
}

// labelEvidence returns the first of appLabels, on the object then on its pod template, whose
// value is, "" when none.
func labelEvidence(w workload, is func(string) bool) string {
	for _, set := range []struct {
		what   string
		labels map[string]string
	}{{"label", w.Labels}, {"pod label", w.PodLabels}} {
		for _, k := range appLabels {
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

// imageName returns the last path element of an image reference's repository, in lower case:
// "keycloak" for "quay.io/keycloak/keycloak:26.1" or "localhost:5000/keycloak@sha256:…".
func imageName(image string) string {
	repo, _, _ := strings.Cut(strings.TrimSpace(image), "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
}

func list(workloads []workload) string {
	if len(workloads) == 0 {
		return "none"
	}
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.String()
	}
	return strings.Join(names, ", ")
}
