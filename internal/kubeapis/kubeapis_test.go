package kubeapis_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/kubeapis"
)

// served137 is what a current cluster serves of the kinds these tests use (Kubernetes 1.37).
func served137(apiVersion, kind string) bool {
	switch apiVersion + "/" + kind {
	case "networking.k8s.io/v1/Ingress", "networking.k8s.io/v1/IngressClass", "networking.k8s.io/v1/NetworkPolicy",
		"apps/v1/Deployment", "apps/v1/StatefulSet", "apps/v1/DaemonSet", "apps/v1/ReplicaSet",
		"policy/v1/PodDisruptionBudget", "autoscaling/v2/HorizontalPodAutoscaler", "autoscaling/v1/HorizontalPodAutoscaler",
		"rbac.authorization.k8s.io/v1/Role", "rbac.authorization.k8s.io/v1/RoleBinding", "batch/v1/CronJob",
		"v1/Service", "v1/Secret", "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration":
		return true
	}
	return false
}

// served121 is a cluster of Kubernetes 1.21: networking.k8s.io/v1beta1 still served.
func served121(apiVersion, kind string) bool {
	return served137(apiVersion, kind) || apiVersion+"/"+kind == "networking.k8s.io/v1beta1/Ingress" ||
		apiVersion+"/"+kind == "extensions/v1beta1/Ingress"
}

func TestRemovedMapParses(t *testing.T) {
	m := kubeapis.Removed()
	for _, c := range []struct{ apiVersion, kind, removedIn, replacement string }{
		{"extensions/v1beta1", "Ingress", "1.22", "networking.k8s.io/v1beta1"},
		{"networking.k8s.io/v1beta1", "Ingress", "1.22", "networking.k8s.io/v1"},
		{"policy/v1beta1", "PodDisruptionBudget", "1.25", "policy/v1"},
		{"autoscaling/v2beta2", "HorizontalPodAutoscaler", "1.26", "autoscaling/v2"},
		{"rbac.authorization.k8s.io/v1beta1", "RoleBinding", "1.22", "rbac.authorization.k8s.io/v1"},
		{"apps/v1beta1", "StatefulSet", "1.16", "apps/v1"},
		{"extensions/v1beta1", "Deployment", "1.16", "apps/v1"},
		{"policy/v1beta1", "PodSecurityPolicy", "1.25", ""},
	} {
		a, ok := m.Lookup(c.apiVersion, c.kind)
		if !ok || a.RemovedIn != c.removedIn || a.Replacement != c.replacement {
			t.Errorf("Lookup(%s, %s) = %+v, %v; want removed in %s, replaced by %q", c.apiVersion, c.kind, a, ok, c.removedIn, c.replacement)
		}
	}
	if _, ok := m.Lookup("apps/v1", "Deployment"); ok {
		t.Error("apps/v1 Deployment listed as removed")
	}
	for _, bad := range []string{
		"apis: [{apiVersion: a/v1, kind: K, removedIn: '1.2', schema: nope}]",
		"apis: [{apiVersion: a/v1, kind: K}]",
		"apis: [{apiVersion: a/v1, kind: K, removedIn: '1.2'}, {apiVersion: a/v1, kind: K, removedIn: '1.3'}]",
		"apis: [{apiVersion: a/v1, kind: K, removedIn: '1.2', typo: x}]",
	} {
		if _, err := kubeapis.ParseMap([]byte(bad)); err == nil {
			t.Errorf("ParseMap(%q) accepted it", bad)
		}
	}
}

// convert converts one object given as YAML and decodes the result strictly into T, the
// replacement API's Go type: a field the replacement does not have fails the test.
func convert[T any](t *testing.T, served kubeapis.Served, doc string) (T, *kubeapis.Conversion) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	c, err := kubeapis.Removed().Convert(obj, served)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := yaml.UnmarshalStrict(data, &out); err != nil {
		t.Fatalf("the converted object is not a valid %T: %v\n%s", out, err, data)
	}
	return out, c
}

const ingressV1beta1 = `apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: identity-id-keycloak, namespace: identity}
spec:
  backend: {serviceName: fallback, servicePort: http}
  rules:
  - host: id.example.test
    http:
      paths:
      - path: /auth
        backend: {serviceName: identity-id-keycloak, servicePort: 80}
      - path: /admin
        pathType: Prefix
        backend: {serviceName: identity-id-keycloak, servicePort: "8080"}
`

func TestConvertIngress(t *testing.T) {
	ing, c := convert[networkingv1.Ingress](t, served137, ingressV1beta1)
	if c == nil || c.From != "extensions/v1beta1" || c.To != "networking.k8s.io/v1" || c.RemovedIn != "1.22" || c.Object() != "Ingress/identity-id-keycloak" {
		t.Fatalf("conversion = %+v", c)
	}
	if ing.APIVersion != "networking.k8s.io/v1" {
		t.Errorf("apiVersion %s", ing.APIVersion)
	}
	if b := ing.Spec.DefaultBackend; b == nil || b.Service == nil || b.Service.Name != "fallback" || b.Service.Port.Name != "http" {
		t.Errorf("defaultBackend = %+v", b)
	}
	paths := ing.Spec.Rules[0].HTTP.Paths
	if s := paths[0].Backend.Service; s == nil || s.Name != "identity-id-keycloak" || s.Port.Number != 80 || s.Port.Name != "" {
		t.Errorf("paths[0].backend = %+v", paths[0].Backend)
	}
	if s := paths[1].Backend.Service; s == nil || s.Port.Number != 8080 {
		t.Errorf(`servicePort "8080" → %+v, want port.number 8080`, paths[1].Backend)
	}
	if paths[0].PathType == nil || *paths[0].PathType != networkingv1.PathTypeImplementationSpecific {
		t.Errorf("paths[0].pathType = %v, want ImplementationSpecific (the old API's default)", paths[0].PathType)
	}
	if paths[1].PathType == nil || *paths[1].PathType != networkingv1.PathTypePrefix {
		t.Errorf("paths[1].pathType = %v, want the given Prefix", paths[1].PathType)
	}
	want := []string{"spec.backend → spec.defaultBackend", "2 backends serviceName/servicePort → service.name/port", "1 paths given pathType ImplementationSpecific"}
	if !reflect.DeepEqual(c.Fields, want) {
		t.Errorf("Fields = %q, want %q", c.Fields, want)
	}

	// A cluster that still serves networking.k8s.io/v1beta1 gets that, and nothing else changes.
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(ingressV1beta1), &obj); err != nil {
		t.Fatal(err)
	}
	c, err := kubeapis.Removed().Convert(obj, func(v, k string) bool { return v == "networking.k8s.io/v1beta1" && k == "Ingress" })
	if err != nil || c == nil || c.To != "networking.k8s.io/v1beta1" || len(c.Fields) != 0 {
		t.Errorf("on a cluster serving networking.k8s.io/v1beta1: %+v, %v", c, err)
	}
	// Served as it is: nothing to do.
	if c, err := kubeapis.Removed().Convert(obj, served121); c != nil || err != nil {
		t.Errorf("served object converted: %+v, %v", c, err)
	}
}

func TestConvertWorkloads(t *testing.T) {
	for _, c := range []struct{ apiVersion, kind string }{
		{"extensions/v1beta1", "Deployment"}, {"apps/v1beta1", "Deployment"}, {"apps/v1beta1", "StatefulSet"},
		{"extensions/v1beta1", "DaemonSet"}, {"apps/v1beta2", "ReplicaSet"},
	} {
		doc := "apiVersion: " + c.apiVersion + "\nkind: " + c.kind + `
metadata: {name: keycloak}
spec:
  replicas: 2
  rollbackTo: {revision: 3}
  template:
    metadata: {labels: {app: keycloak, release: identity}}
    spec: {containers: [{name: keycloak, image: keycloak:11}]}
`
		var selector map[string]string
		var conv *kubeapis.Conversion
		switch c.kind {
		case "Deployment":
			d, cv := convert[appsv1.Deployment](t, served137, doc)
			selector, conv = d.Spec.Selector.MatchLabels, cv
		case "StatefulSet":
			s, cv := convert[appsv1.StatefulSet](t, served137, strings.Replace(doc, "  rollbackTo: {revision: 3}\n", "", 1))
			selector, conv = s.Spec.Selector.MatchLabels, cv
		case "DaemonSet":
			s, cv := convert[appsv1.DaemonSet](t, served137, strings.Replace(doc, "  replicas: 2\n  rollbackTo: {revision: 3}\n", "  templateGeneration: 4\n", 1))
			selector, conv = s.Spec.Selector.MatchLabels, cv
		case "ReplicaSet":
			s, cv := convert[appsv1.ReplicaSet](t, served137, strings.Replace(doc, "  rollbackTo: {revision: 3}\n", "", 1))
			selector, conv = s.Spec.Selector.MatchLabels, cv
		}
		if want := map[string]string{"app": "keycloak", "release": "identity"}; !reflect.DeepEqual(selector, want) {
			t.Errorf("%s %s: selector %v, want the template's labels %v", c.apiVersion, c.kind, selector, want)
		}
		if conv == nil || conv.To != "apps/v1" || !strings.Contains(strings.Join(conv.Fields, ";"), "spec.selector made explicit") {
			t.Errorf("%s %s: conversion %+v", c.apiVersion, c.kind, conv)
		}
	}

	// A selector given stays as it is.
	d, conv := convert[appsv1.Deployment](t, served137, `apiVersion: apps/v1beta2
kind: Deployment
metadata: {name: keycloak}
spec:
  selector: {matchLabels: {app: keycloak}}
  template:
    metadata: {labels: {app: keycloak, version: "11"}}
    spec: {containers: [{name: keycloak, image: keycloak:11}]}
`)
	if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, map[string]string{"app": "keycloak"}) || len(conv.Fields) != 0 {
		t.Errorf("given selector: %v, notes %v", d.Spec.Selector, conv.Fields)
	}

	// Neither a selector nor labels: a person must decide.
	var obj map[string]any
	if err := yaml.Unmarshal([]byte("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: {}}}\n"), &obj); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeapis.Removed().Convert(obj, served137); !errors.Is(err, kubeapis.ErrNoConversion) {
		t.Errorf("workload without labels: %v, want ErrNoConversion", err)
	}
}

func TestConvertPDBAndHPA(t *testing.T) {
	pdb, c := convert[policyv1.PodDisruptionBudget](t, served137, "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: keycloak}\nspec: {minAvailable: 1, selector: {matchLabels: {app: keycloak}}}\n")
	if pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app"] != "keycloak" || c.To != "policy/v1" || len(c.Fields) != 0 {
		t.Errorf("pdb %+v, %+v", pdb.Spec, c)
	}
	pdb, c = convert[policyv1.PodDisruptionBudget](t, served137, "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: none}\nspec: {maxUnavailable: 1, selector: {}}\n")
	if e := pdb.Spec.Selector.MatchExpressions; len(e) != 1 || e[0].Key != "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match" || len(c.Fields) != 1 {
		t.Errorf("empty selector → %+v (%v), want the API server's match-none selector", pdb.Spec.Selector, c.Fields)
	}

	hpa, c := convert[autoscalingv2.HorizontalPodAutoscaler](t, served137, `apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: keycloak}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: keycloak}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`)
	if c.To != "autoscaling/v2" || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 || len(c.Fields) != 0 {
		t.Errorf("v2beta2 HPA: %+v, %+v", hpa.Spec, c)
	}

	hpa, c = convert[autoscalingv2.HorizontalPodAutoscaler](t, served137, `apiVersion: autoscaling/v2beta1
kind: HorizontalPodAutoscaler
metadata: {name: keycloak}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: keycloak}
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, targetAverageUtilization: 80}
  - type: Pods
    pods: {metricName: sessions, targetAverageValue: "100"}
  - type: Object
    object: {target: {kind: Service, name: keycloak}, metricName: requests, targetValue: "2k"}
  - type: External
    external: {metricName: queue, metricSelector: {matchLabels: {q: a}}, targetAverageValue: "30"}
`)
	m := hpa.Spec.Metrics
	if m[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType || *m[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("resource metric %+v", m[0].Resource)
	}
	if m[1].Pods.Metric.Name != "sessions" || m[1].Pods.Target.AverageValue.String() != "100" {
		t.Errorf("pods metric %+v", m[1].Pods)
	}
	if m[2].Object.DescribedObject.Name != "keycloak" || m[2].Object.Metric.Name != "requests" || m[2].Object.Target.Value.String() != "2k" {
		t.Errorf("object metric %+v", m[2].Object)
	}
	if m[3].External.Metric.Selector.MatchLabels["q"] != "a" || m[3].External.Target.Type != autoscalingv2.AverageValueMetricType {
		t.Errorf("external metric %+v", m[3].External)
	}
	if len(c.Fields) != 1 {
		t.Errorf("notes %v", c.Fields)
	}

	rb, c := convert[rbacv1.RoleBinding](t, served137, "apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: RoleBinding\nmetadata: {name: r}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{kind: ServiceAccount, name: s}]\n")
	if rb.RoleRef.Name != "r" || c.To != "rbac.authorization.k8s.io/v1" {
		t.Errorf("rbac: %+v, %+v", rb, c)
	}
}

func TestConvertManifest(t *testing.T) {
	const service = `---
# Source: alfresco-identity-service/templates/keycloak-service.yaml
apiVersion: v1
kind: Service
metadata:
  name: identity-id-keycloak
spec:
    ports: [{port: 80}]   # odd indentation and a comment, kept as they are
`
	const psp = `---
# Source: alfresco-identity-service/templates/psp.yaml
apiVersion: policy/v1beta1
kind: PodSecurityPolicy
metadata: {name: restricted}
spec: {privileged: false}
`
	const crd = `---
# Source: alfresco-identity-service/templates/custom.yaml
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
`
	in := service + "---\n# Source: alfresco-identity-service/templates/ingress.yaml\n" + ingressV1beta1 + psp + crd
	out, convs, err := kubeapis.Removed().ConvertManifest(in, served137)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, service+"---\n# Source: alfresco-identity-service/templates/ingress.yaml\napiVersion: networking.k8s.io/v1\n") {
		t.Errorf("the Service is not kept byte for byte, or the Ingress lost its Source comment:\n%s", out)
	}
	if !strings.HasSuffix(out, crd) {
		t.Errorf("an unknown kind the cluster does not serve is not left as it is:\n%s", out)
	}
	if strings.Contains(out, "PodSecurityPolicy") {
		t.Errorf("the PodSecurityPolicy (no replacement) is kept:\n%s", out)
	}
	if len(convs) != 2 || convs[0].Object() != "Ingress/identity-id-keycloak" || convs[1].Object() != "PodSecurityPolicy/restricted" || convs[1].To != "" {
		t.Errorf("conversions = %+v", convs)
	}
	if strings.Contains(out, "serviceName") {
		t.Errorf("the Ingress kept serviceName:\n%s", out)
	}

	// Nothing to convert: the manifest comes back as it was.
	if out, convs, err := kubeapis.Removed().ConvertManifest(service+crd, served137); out != service+crd || len(convs) != 0 || err != nil {
		t.Errorf("untouched manifest changed: %v %v\n%s", convs, err, out)
	}

	// No automatic conversion: the error names the object; the manifest is not returned.
	hook := "---\napiVersion: admissionregistration.k8s.io/v1beta1\nkind: MutatingWebhookConfiguration\nmetadata: {name: hook}\nwebhooks: []\n"
	if _, _, err := kubeapis.Removed().ConvertManifest(service+hook, served137); !errors.Is(err, kubeapis.ErrNoConversion) || !strings.Contains(err.Error(), "MutatingWebhookConfiguration/hook") {
		t.Errorf("webhook: %v, want ErrNoConversion naming it", err)
	}
}
