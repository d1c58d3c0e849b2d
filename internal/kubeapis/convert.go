package kubeapis

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// The conversions of removed.yaml's schema names. Each changes obj (an object of the removed
// API) into the fields of its replacement and says what it changed; the caller sets the
// apiVersion. They follow the API server's own conversions (k8s.io/kubernetes pkg/apis/*), so
// that a converted manifest describes the object the cluster has stored since it stopped
// serving the old API.

func convertSame(map[string]any) ([]string, error) { return nil, nil }

func convertNone(map[string]any) ([]string, error) {
	return nil, fmt.Errorf("%w: its fields changed in ways that need a person (the chart must render the new API)", ErrNoConversion)
}

// defaultPathType is what the old Ingress APIs defaulted a path's pathType to; v1 requires one.
const defaultPathType = "ImplementationSpecific"

// convertIngress converts a networking.k8s.io/v1beta1 (or extensions/v1beta1) Ingress to v1:
// spec.backend becomes spec.defaultBackend, every backend's serviceName/servicePort becomes
// service.name and port.number (or port.name for a named port), and a path without a pathType
// gets the one the old API defaulted to.
func convertIngress(obj map[string]any) ([]string, error) {
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return nil, nil
	}
	var notes []string
	if b, ok := spec["backend"].(map[string]any); ok {
		if err := convertIngressBackend(b); err != nil {
			return nil, fmt.Errorf("spec.backend: %w", err)
		}
		delete(spec, "backend")
		spec["defaultBackend"] = b
		notes = append(notes, "spec.backend → spec.defaultBackend")
	}
	rules, _ := spec["rules"].([]any)
	backends, pathTypes := 0, 0
	for i, r := range rules {
		rule, _ := r.(map[string]any)
		http, _ := rule["http"].(map[string]any)
		paths, _ := http["paths"].([]any)
		for j, p := range paths {
			path, _ := p.(map[string]any)
			if path == nil {
				continue
			}
			if b, ok := path["backend"].(map[string]any); ok {
				if _, old := b["serviceName"]; old {
					backends++
				}
				if err := convertIngressBackend(b); err != nil {
					return nil, fmt.Errorf("spec.rules[%d].http.paths[%d].backend: %w", i, j, err)
				}
			}
			if _, ok := path["pathType"]; !ok {
				path["pathType"] = defaultPathType
				pathTypes++
			}
		}
	}
	if backends > 0 {
		notes = append(notes, fmt.Sprintf("%d backends serviceName/servicePort → service.name/port", backends))
	}
	if pathTypes > 0 {
		notes = append(notes, fmt.Sprintf("%d paths given pathType %s", pathTypes, defaultPathType))
	}
	return notes, nil
}

// convertIngressBackend rewrites one backend in place: {serviceName, servicePort} →
// {service: {name, port: {number | name}}}. A resource backend is the same in both.
func convertIngressBackend(b map[string]any) error {
	name, hasName := b["serviceName"]
	port, hasPort := b["servicePort"]
	if !hasName && !hasPort {
		return nil
	}
	delete(b, "serviceName")
	delete(b, "servicePort")
	svc := map[string]any{"name": name}
	switch p := port.(type) {
	case nil:
	case int64, int, float64:
		svc["port"] = map[string]any{"number": p}
	case string:
		// A number given as a string is a number: the old API refused a port name of digits.
		if n, err := strconv.ParseInt(p, 10, 32); err == nil {
			svc["port"] = map[string]any{"number": n}
		} else {
			svc["port"] = map[string]any{"name": p}
		}
	default:
		return fmt.Errorf("servicePort %v is neither a number nor a name", port)
	}
	b["service"] = svc
	return nil
}

// convertWorkload converts a Deployment, StatefulSet, DaemonSet or ReplicaSet of
// extensions/v1beta1 or apps/v1beta1|v1beta2 to apps/v1, where spec.selector is required:
// the old APIs defaulted it to the pod template's labels, which it becomes here. Fields apps/v1
// does not have (spec.rollbackTo, spec.templateGeneration) are dropped.
func convertWorkload(obj map[string]any) ([]string, error) {
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return nil, fmt.Errorf("%w: no spec", ErrNoConversion)
	}
	var notes []string
	if _, ok := spec["selector"]; !ok {
		tmpl, _ := spec["template"].(map[string]any)
		meta, _ := tmpl["metadata"].(map[string]any)
		labels, _ := meta["labels"].(map[string]any)
		if len(labels) == 0 {
			return nil, fmt.Errorf("%w: no spec.selector and no template labels to make it from", ErrNoConversion)
		}
		spec["selector"] = map[string]any{"matchLabels": maps.Clone(labels)}
		notes = append(notes, fmt.Sprintf("spec.selector made explicit from the template's labels %v", slices.Sorted(maps.Keys(labels))))
	}
	for _, field := range []string{"rollbackTo", "templateGeneration"} {
		if _, ok := spec[field]; ok {
			delete(spec, field)
			notes = append(notes, "spec."+field+" dropped (apps/v1 has none)")
		}
	}
	return notes, nil
}

// pdbMatchNone is the selector policy/v1 gives a PodDisruptionBudget whose v1beta1 selector
// was empty (which selected no pods; in v1 it selects all), as the API server converts it.
var pdbMatchNone = map[string]any{"matchExpressions": []any{map[string]any{
	"key": "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match", "operator": "Exists",
}}}

// convertPDB converts a policy/v1beta1 PodDisruptionBudget to policy/v1, keeping the meaning
// of an empty selector (no pods).
func convertPDB(obj map[string]any) ([]string, error) {
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return nil, nil
	}
	sel, ok := spec["selector"].(map[string]any)
	if ok && len(sel) == 0 {
		spec["selector"] = pdbMatchNone
		return []string{"the empty spec.selector (no pods in v1beta1) kept selecting none"}, nil
	}
	return nil, nil
}

// convertHPAv2beta1 converts an autoscaling/v2beta1 HorizontalPodAutoscaler's metrics to
// autoscaling/v2: each metric's target*/metricName fields become a target {type, value}
// and a metric {name, selector}.
func convertHPAv2beta1(obj map[string]any) ([]string, error) {
	spec, _ := obj["spec"].(map[string]any)
	metrics, _ := spec["metrics"].([]any)
	for i, m := range metrics {
		metric, _ := m.(map[string]any)
		typ, _ := metric["type"].(string)
		src, ok := metric[map[string]string{"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external"}[typ]].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: spec.metrics[%d] of type %q", ErrNoConversion, i, typ)
		}
		target := map[string]any{}
		move := func(from, targetType, to string) {
			if v, ok := src[from]; ok {
				delete(src, from)
				target["type"] = targetType
				target[to] = v
			}
		}
		switch typ {
		case "Resource":
			move("targetAverageValue", "AverageValue", "averageValue")
			move("targetAverageUtilization", "Utilization", "averageUtilization")
		case "Pods":
			move("targetAverageValue", "AverageValue", "averageValue")
		case "Object":
			move("targetValue", "Value", "value")
			move("averageValue", "AverageValue", "averageValue")
			if t, ok := src["target"]; ok {
				delete(src, "target")
				src["describedObject"] = t
			}
		case "External":
			move("targetValue", "Value", "value")
			move("targetAverageValue", "AverageValue", "averageValue")
		}
		if typ != "Resource" {
			id := map[string]any{"name": src["metricName"]}
			delete(src, "metricName")
			for _, sel := range []string{"selector", "metricSelector"} {
				if s, ok := src[sel]; ok {
					delete(src, sel)
					id["selector"] = s
				}
			}
			src["metric"] = id
		}
		src["target"] = target
	}
	if len(metrics) == 0 {
		return nil, nil
	}
	return []string{fmt.Sprintf("%d metrics' targets rewritten as target {type, value}", len(metrics))}, nil
}
