package kubeforward

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
)

// PostgresPort is PostgreSQL's port, the default of a target that names none.
const PostgresPort = 5432

// FromManifest finds the release's own PostgreSQL in its rendered manifest: the StatefulSet
// that manifest.Classify calls PostgreSQL (the rule by which the quiesce never scales it), and
// its containers' PostgreSQL port. The forward then finds the pod through the live StatefulSet
// and its pods' names, never through a Service: after a failed helm upgrade or rollback the
// Service may carry the other version's selector while the pod keeps its labels.
func FromManifest(m string) (forwardspec.Spec, error) {
	objs, err := manifest.Objects(m)
	if err != nil {
		return forwardspec.Spec{}, err
	}
	var sets []*appsv1.StatefulSet
	for _, o := range objs {
		if o.GetKind() != manifest.StatefulSet || !strings.HasPrefix(o.GetAPIVersion(), "apps/") {
			continue
		}
		w, _, err := manifest.WorkloadOf(o)
		if err != nil {
			return forwardspec.Spec{}, err
		}
		if app, _ := manifest.Classify(w); app != manifest.PostgreSQL {
			continue
		}
		var sts appsv1.StatefulSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &sts); err != nil {
			return forwardspec.Spec{}, fmt.Errorf("StatefulSet %s: %w", o.GetName(), err)
		}
		sets = append(sets, &sts)
	}
	switch len(sets) {
	case 0:
		return forwardspec.Spec{}, fmt.Errorf("the release has no PostgreSQL StatefulSet (none runs a postgres image or has an app label naming postgres); name the database as service/NAME[:PORT] or pod/NAME[:PORT]")
	case 1:
	default:
		var names []string
		for _, s := range sets {
			names = append(names, s.Name)
		}
		return forwardspec.Spec{}, fmt.Errorf("the release has %d PostgreSQL StatefulSets (%s); name one as service/NAME[:PORT] or pod/NAME[:PORT]", len(sets), strings.Join(names, ", "))
	}
	sts := sets[0]
	port := ""
	if p, ok := containerPostgresPort(sts.Spec.Template.Spec.Containers); ok {
		port = strconv.Itoa(int(p))
	}
	return forwardspec.Spec{Kind: forwardspec.KindStatefulSet, Name: sts.Name, Port: port}, nil
}

// isPostgresPortName reports whether a port name says PostgreSQL (postgresql, tcp-postgresql,
// postgres, pg).
func isPostgresPortName(name string) bool {
	return strings.Contains(name, "postgres") || name == "pg"
}

// servicePostgresPort picks the Service port of PostgreSQL: one named for it, else one whose
// target is the containers' PostgreSQL port, else 5432, else the only port.
func servicePostgresPort(svc *corev1.Service, containers []corev1.Container) (int32, bool) {
	ports := svc.Spec.Ports
	for _, p := range ports {
		if isPostgresPortName(p.Name) {
			return p.Port, true
		}
	}
	if cp, ok := containerPostgresPort(containers); ok {
		for _, p := range ports {
			if target, ok := targetPort(p, containers); ok && target == cp {
				return p.Port, true
			}
		}
	}
	for _, p := range ports {
		if p.Port == PostgresPort {
			return p.Port, true
		}
	}
	if len(ports) == 1 {
		return ports[0].Port, true
	}
	return 0, false
}

// containerPostgresPort is the containers' PostgreSQL port: one named for it, else 5432 when a
// container declares it, else the first declared port.
func containerPostgresPort(containers []corev1.Container) (int32, bool) {
	var first int32
	for _, c := range containers {
		for _, p := range c.Ports {
			if isPostgresPortName(p.Name) {
				return p.ContainerPort, true
			}
			if p.ContainerPort == PostgresPort {
				first = PostgresPort
			} else if first == 0 {
				first = p.ContainerPort
			}
		}
	}
	return first, first != 0
}

// targetPort is the container port a Service port leads to, given the pod's containers.
func targetPort(p corev1.ServicePort, containers []corev1.Container) (int32, bool) {
	switch {
	case p.TargetPort.StrVal != "":
		return namedPort(p.TargetPort.StrVal, containers)
	case p.TargetPort.IntVal != 0:
		return p.TargetPort.IntVal, true
	default:
		return p.Port, true
	}
}

// namedPort is the number of a container port by its name.
func namedPort(name string, containers []corev1.Container) (int32, bool) {
	for _, c := range containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}
