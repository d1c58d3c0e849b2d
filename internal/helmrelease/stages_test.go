package helmrelease_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The kwok Stage objects of testdata/kwok: checked here for shape and for the rules that make
// them work together (see testdata/kwok/README.md). Their behaviour on a running kwok cluster is
// exercised by the tests that use internal/testworld.

type stage struct {
	file string
	name string
	kind string // resourceRef.kind
	obj  map[string]any
}

func loadStages(t *testing.T) []stage {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "kwok", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no stage files in testdata/kwok: %v", err)
	}
	var out []stage
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for i := 0; ; i++ {
			var obj map[string]any
			err := dec.Decode(&obj)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if obj == nil {
				continue
			}
			s := stage{file: filepath.Base(f), obj: obj}
			s.name, _ = dig(obj, "metadata", "name").(string)
			s.kind, _ = dig(obj, "spec", "resourceRef", "kind").(string)
			out = append(out, s)
		}
	}
	return out
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

type expr struct{ key, op string }

func expressions(s stage) (map[expr][]string, error) {
	list, ok := dig(s.obj, "spec", "selector", "matchExpressions").([]any)
	if !ok || len(list) == 0 {
		return nil, errors.New("no spec.selector.matchExpressions")
	}
	out := map[expr][]string{}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("matchExpression %v is not an object", item)
		}
		key, _ := m["key"].(string)
		op, _ := m["operator"].(string)
		var vals []string
		if raw, ok := m["values"].([]any); ok {
			for _, v := range raw {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("%s: value %v is not a string", key, v)
				}
				vals = append(vals, s)
			}
		}
		switch op {
		case "In", "NotIn":
			if len(vals) == 0 {
				return nil, fmt.Errorf("%s %s without values", key, op)
			}
		case "Exists", "DoesNotExist":
			if _, has := m["values"]; has {
				return nil, fmt.Errorf("%s %s with values", key, op)
			}
		default:
			return nil, fmt.Errorf("%s: operator %q is not In, NotIn, Exists or DoesNotExist", key, op)
		}
		if key == "" {
			return nil, errors.New("matchExpression without key")
		}
		if _, dup := out[expr{key, op}]; dup {
			return nil, fmt.Errorf("%s %s twice", key, op)
		}
		out[expr{key, op}] = vals
	}
	return out, nil
}

func TestKwokStagesShape(t *testing.T) {
	stages := loadStages(t)
	names := map[string]string{}
	allowedSpec := []string{"resourceRef", "selector", "weight", "weightFrom", "delay", "next", "immediateNextStage"}
	allowedNext := []string{"event", "finalizers", "delete", "statusTemplate", "patches"}
	for _, s := range stages {
		where := fmt.Sprintf("%s: stage %q", s.file, s.name)
		if got := s.obj["apiVersion"]; got != "kwok.x-k8s.io/v1alpha1" {
			t.Errorf("%s: apiVersion %v, want kwok.x-k8s.io/v1alpha1", where, got)
		}
		if got := s.obj["kind"]; got != "Stage" {
			t.Errorf("%s: kind %v, want Stage", where, got)
		}
		if s.name == "" {
			t.Errorf("%s: no metadata.name", where)
		}
		if prev, dup := names[s.name]; dup {
			t.Errorf("%s: name already used in %s", where, prev)
		}
		names[s.name] = s.file
		if g := dig(s.obj, "spec", "resourceRef", "apiGroup"); g != "v1" || (s.kind != "Pod" && s.kind != "Node") {
			t.Errorf("%s: resourceRef %v/%q, want v1 Pod or Node", where, g, s.kind)
		}
		spec, _ := s.obj["spec"].(map[string]any)
		for k := range spec {
			if !slices.Contains(allowedSpec, k) {
				t.Errorf("%s: unknown field spec.%s", where, k)
			}
		}
		next, ok := spec["next"].(map[string]any)
		if !ok {
			t.Errorf("%s: no spec.next", where)
			continue
		}
		for k := range next {
			if !slices.Contains(allowedNext, k) {
				t.Errorf("%s: unknown field spec.next.%s", where, k)
			}
		}
		if tpl, _ := next["statusTemplate"].(string); tpl == "" && next["delete"] != true {
			t.Errorf("%s: next has neither a statusTemplate nor delete: true", where)
		}
		if d, ok := spec["delay"].(map[string]any); ok {
			for _, k := range []string{"durationMilliseconds", "jitterDurationMilliseconds"} {
				if v, has := d[k]; has {
					if n, ok := v.(float64); !ok || n < 0 || n != float64(int64(n)) {
						t.Errorf("%s: delay.%s = %v (%T), want a non-negative integer", where, k, v, v)
					}
				}
			}
		}
		if _, err := expressions(s); err != nil {
			t.Errorf("%s: selector: %v", where, err)
		}
	}
}

const (
	faultLabelKey = `.metadata.labels["identity-upgrade.test/fault"]`
	deletionKey   = ".metadata.deletionTimestamp"
)

// kwokctl installs none of its built-in stages once a configuration has any Stage, so the
// directory must bring node and pod stages of its own; ordinary pod stages must leave faulted
// pods to the fault stages, and every fault the chart marks must have stages.
func TestKwokStagesWorkTogether(t *testing.T) {
	stages := loadStages(t)
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	for _, name := range []string{"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("no stage %q: kwokctl's built-in stages are not installed alongside ours", name)
		}
	}

	covered := map[string]bool{}
	for _, s := range stages {
		if s.kind != "Pod" {
			continue
		}
		exprs, err := expressions(s)
		if err != nil {
			t.Errorf("stage %s: %v", s.name, err)
			continue
		}
		for e := range exprs {
			if strings.HasPrefix(e.key, ".status.podIP") {
				t.Errorf("stage %s selects on %s: the kwok controller kwokctl starts may leave podIP empty; use .status.startTime", s.name, e.key)
			}
		}
		_, deleting := exprs[expr{deletionKey, "Exists"}]
		_, notDeleting := exprs[expr{deletionKey, "DoesNotExist"}]
		faults, isFault := exprs[expr{faultLabelKey, "In"}]
		_, excludesFaults := exprs[expr{faultLabelKey, "DoesNotExist"}]
		switch {
		case deleting:
			if isFault || excludesFaults {
				t.Errorf("stage %s deletes pods but looks at the fault label: deletion must work for every pod", s.name)
			}
		case isFault:
			if !notDeleting {
				t.Errorf("fault stage %s does not require %s DoesNotExist: it would race pod-delete", s.name, deletionKey)
			}
			if !strings.HasPrefix(s.name, "fault-") {
				t.Errorf("fault stage %s: name should start with fault-", s.name)
			}
			for _, f := range faults {
				covered[f] = true
			}
		default:
			if !excludesFaults {
				t.Errorf("stage %s does not exclude pods labelled identity-upgrade.test/fault: it would make faulted pods ready", s.name)
			}
			if !notDeleting {
				t.Errorf("stage %s does not require %s DoesNotExist", s.name, deletionKey)
			}
		}
	}

	// The label values the charts render are exactly those the stages react to.
	rendered := map[string]bool{}
	for _, v := range versions {
		for _, fault := range []string{"crash-after-ready", "crashloop", "image-pull", "create-container-config-error", "unschedulable"} {
			r := mustRender(t, v, map[string]any{"fault": fault})
			if f, ok := r.statefulSet(t, keycloak).Spec.Template.Labels[faultKey]; ok {
				rendered[f] = true
			}
		}
	}
	if got, want := slices.Sorted(maps.Keys(covered)), slices.Sorted(maps.Keys(rendered)); !slices.Equal(got, want) {
		t.Errorf("stages react to faults %v, the charts label pods with %v", got, want)
	}
	if got := slices.Sorted(maps.Keys(rendered)); !slices.Equal(got, slices.Sorted(slices.Values(kwokFaults))) {
		t.Errorf("charts label pods with %v, want %v", got, kwokFaults)
	}
}

// kwokFuncs stands in for the template functions kwok v0.8.0 gives status templates: sprig's,
// kwok's own (pkg/utils/gotpl) and those of its node and pod controllers.
func kwokFuncs() template.FuncMap {
	f := sprig.TxtFuncMap()
	ip := func() []string { return []string{"127.0.0.1"} }
	extra := template.FuncMap{
		// Quote as kwok's: JSON for strings, the quoted JSON text for anything else.
		"Quote": func(s any) string {
			data, err := json.Marshal(s)
			if err != nil {
				return strconv.Quote(fmt.Sprint(s))
			}
			if len(data) > 0 && data[0] == '"' {
				return string(data)
			}
			return strconv.Quote(string(data))
		},
		"Now":     func() string { return time.Now().Format(time.RFC3339Nano) },
		"Version": func() string { return "0.8.0" },
		"YAML": func(s any, indent ...int) (string, error) {
			d, err := yaml.Marshal(s)
			if err != nil {
				return "", err
			}
			if len(indent) == 1 && indent[0] > 0 {
				pad := strings.Repeat(" ", indent[0]*2)
				return strings.ReplaceAll("\n"+string(d), "\n", "\n"+pad), nil
			}
			return string(d), nil
		},
		"NodeConditions": func() any {
			return []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"},
				map[string]any{"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "ok"},
			}
		},
		"NodeIP":      func() string { return "127.0.0.1" },
		"NodeName":    func() string { return "kwok-node-0" },
		"NodePort":    func() int { return 10250 },
		"PodIP":       func() string { return "10.0.0.1" },
		"NodeIPWith":  func(string) string { return "127.0.0.1" },
		"NodeIPsWith": func(string) []string { return ip() },
		"PodIPWith":   func(string, bool, string, string, string) string { return "10.0.0.1" },
		"PodIPsWith":  func(string, bool, string, string, string) []string { return []string{"10.0.0.1"} },
	}
	maps.Copy(f, extra)
	return f
}

// asKwokSees turns an object into what a kwok template sees: its JSON with numbers kept as
// json.Number.
func asKwokSees(t *testing.T, obj any) any {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every status template renders, for a fresh and for a started object, to YAML that decodes
// strictly into the status type (a misspelt field fails).
func TestKwokStatusTemplatesRender(t *testing.T) {
	fresh := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Spec: corev1.PodSpec{
			NodeName:       "kwok-node-0",
			Containers:     []corev1.Container{{Name: "keycloak", Image: "alfresco/alfresco-identity-service:1.3"}, {Name: "sidecar", Image: "busybox"}},
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	fresh.Name, fresh.Namespace, fresh.UID = "idsvc-id-keycloak-0", relNS, "0f0f"
	started := fresh.DeepCopy()
	started.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "10.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "keycloak", RestartCount: 7,
			State:                corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}},
		}},
	}
	node := &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}}
	node.Name = "kwok-node-0"
	readyNode := node.DeepCopy()
	readyNode.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	readyNode.Status.Capacity = corev1.ResourceList{}

	funcs := kwokFuncs()
	for _, s := range loadStages(t) {
		text, _ := dig(s.obj, "spec", "next", "statusTemplate").(string)
		if text == "" {
			continue
		}
		tpl, err := template.New(s.name).Funcs(funcs).Parse(strings.TrimSpace(text))
		if err != nil {
			t.Errorf("stage %s: statusTemplate: %v", s.name, err)
			continue
		}
		samples := []any{fresh, started}
		if s.kind == "Node" {
			samples = []any{node, readyNode}
		}
		for i, sample := range samples {
			var buf bytes.Buffer
			if err := tpl.Execute(&buf, asKwokSees(t, sample)); err != nil {
				t.Errorf("stage %s, sample %d: %v", s.name, i, err)
				continue
			}
			var err error
			if s.kind == "Node" {
				var st corev1.NodeStatus
				err = yaml.UnmarshalStrict(buf.Bytes(), &st)
			} else {
				var st corev1.PodStatus
				err = yaml.UnmarshalStrict(buf.Bytes(), &st)
				if err == nil {
					err = checkContainerStates(st, sample == any(started))
				}
			}
			if err != nil {
				t.Errorf("stage %s, sample %d: rendered status: %v\n%s", s.name, i, err, buf.String())
			}
		}
	}
}

// checkContainerStates: each container status has exactly one state, and a stage that restarts
// a container counts from the previous restartCount.
func checkContainerStates(st corev1.PodStatus, started bool) error {
	for _, list := range [][]corev1.ContainerStatus{st.ContainerStatuses, st.InitContainerStatuses} {
		for _, cs := range list {
			n := 0
			for _, set := range []bool{cs.State.Waiting != nil, cs.State.Running != nil, cs.State.Terminated != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("container %s has %d states", cs.Name, n)
			}
			if started && cs.Name == "keycloak" && cs.RestartCount != 0 && cs.RestartCount != 7 && cs.RestartCount != 8 {
				return fmt.Errorf("container %s: restartCount %d from a previous 7", cs.Name, cs.RestartCount)
			}
		}
	}
	return nil
}
