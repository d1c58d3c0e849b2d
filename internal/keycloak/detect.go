package keycloak

import (
	"fmt"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Detection reads what a workload runs, never its name (manifest.Classify): a release named
// "keycloak" names its bundled database "keycloak-postgresql-id", and scaling that down would
// stop the database the backup reads and the restore writes. A workload that Classify calls
// PostgreSQL is never scaled, also not when the `workload` input names it; the port-forward's
// auto target is found by the same rule, so the quiesce can never stop the database it uses.

// detected is a workload with the reason it was told Keycloak or PostgreSQL, for logs and
// errors ("image postgres:11.7", "pod label app.kubernetes.io/name=keycloak").
type detected struct {
	manifest.Workload
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
func Detect(m, name string) ([]rollout.Scaled, error) {
	s, err := detect(m, name)
	if err != nil {
		return nil, err
	}
	return s.scaled(), nil
}

func detect(m, name string) (selection, error) {
	workloads, err := manifestWorkloads(m)
	if err != nil {
		return selection{}, err
	}
	var s selection
	for _, w := range workloads {
		if app, why := manifest.Classify(w); app == manifest.PostgreSQL {
			s.Postgres = append(s.Postgres, detected{w, why})
		}
	}
	if name != "" {
		w, err := named(workloads, name)
		if err != nil {
			return selection{}, err
		}
		if app, why := manifest.Classify(w); app == manifest.PostgreSQL {
			return selection{}, fmt.Errorf("workload %s (the `workload` input) runs PostgreSQL (%s): the database must keep running; name the Keycloak workload",
				name, why)
		}
		s.Keycloak = []detected{{w, "named by the `workload` input"}}
		return s, nil
	}
	for _, w := range workloads {
		if app, why := manifest.Classify(w); app == manifest.Keycloak {
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
			strings.Join(manifest.AppLabels, ", "), list(workloads), pg)
	}
	return s, nil
}

// named finds the workload the `workload` input names.
func named(workloads []manifest.Workload, name string) (manifest.Workload, error) {
	kind, bare, err := parseName(name)
	if err != nil {
		return manifest.Workload{}, err
	}
	var found []manifest.Workload
	for _, w := range workloads {
		if w.Name == bare && (kind == "" || w.Kind == kind) {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return manifest.Workload{}, fmt.Errorf("workload %q (the `workload` input) is not in the release manifest; its workloads: %s", name, list(workloads))
	case 1:
		return found[0], nil
	default:
		return manifest.Workload{}, fmt.Errorf("workload %q (the `workload` input) names both a StatefulSet and a Deployment: write StatefulSet/%s or Deployment/%s", name, bare, bare)
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
func manifestWorkloads(m string) ([]manifest.Workload, error) {
	objs, err := manifest.Objects(m)
	if err != nil {
		return nil, fmt.Errorf("read the release manifest: %w", err)
	}
	workloads, err := manifest.Workloads(objs)
	if err != nil {
		return nil, fmt.Errorf("read the release manifest: %w", err)
	}
	return workloads, nil
}

func list(workloads []manifest.Workload) string {
	if len(workloads) == 0 {
		return "none"
	}
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.String()
	}
	return strings.Join(names, ", ")
}
