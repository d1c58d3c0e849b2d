package helmrelease

import (
	"cmp"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/kubeapis"
	"github.com/identity-upgrade/identity-upgrade/internal/manifest"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// immutableFields lists, per kind, the spec fields the API server refuses to change on update.
// A change to any of them makes a plain upgrade fail after it has applied the resources before
// it in the manifest.
var immutableFields = map[string][]string{
	"StatefulSet": {"spec.selector", "spec.serviceName", "spec.podManagementPolicy", "spec.volumeClaimTemplates"},
	"Deployment":  {"spec.selector"},
	"DaemonSet":   {"spec.selector"},
	"ReplicaSet":  {"spec.selector"},
	"Job":         {"spec.selector", "spec.template"},
}

type object struct {
	kind, namespace, name string
	body                  map[string]any
}

// Diff lists the resources that differ between two revisions' manifests, as DiffManifests
// does. Objects of current in APIs the cluster no longer serves are compared as what the API
// server has made of them (the served API, as map-removed-apis stores them), once a render has
// read the cluster's APIs: otherwise an Ingress moving to networking.k8s.io would show as
// removed and added.
func (c *Client) Diff(current, target string) ([]rollout.Change, error) {
	if served := c.servedIfKnown(); served != nil {
		if mapped, _, err := kubeapis.Removed().ConvertManifest(current, served); err == nil {
			current = mapped
		}
	}
	return DiffManifests(current, target, c.namespace)
}

// DiffManifests lists the resources that are added, removed or changed between two rendered
// manifests, with the immutable fields each change touches. defaultNamespace is where
// resources without a namespace live.
func DiffManifests(current, target, defaultNamespace string) ([]rollout.Change, error) {
	before, err := parseManifest(current, defaultNamespace)
	if err != nil {
		return nil, fmt.Errorf("parse current manifest: %w", err)
	}
	after, err := parseManifest(target, defaultNamespace)
	if err != nil {
		return nil, fmt.Errorf("parse target manifest: %w", err)
	}
	var changes []rollout.Change
	for key, a := range after {
		b, ok := before[key]
		switch {
		case !ok:
			changes = append(changes, rollout.Change{Action: rollout.Added, Kind: a.kind, Namespace: a.namespace, Name: a.name, Diff: unified(nil, a)})
		case !reflect.DeepEqual(a.body, b.body):
			c := rollout.Change{Action: rollout.Changed, Kind: a.kind, Namespace: a.namespace, Name: a.name, Diff: unified(&b, a)}
			for _, field := range immutableFields[a.kind] {
				if !reflect.DeepEqual(lookup(b.body, field), lookup(a.body, field)) {
					c.Immutable = append(c.Immutable, field)
				}
			}
			changes = append(changes, c)
		}
	}
	for key, b := range before {
		if _, ok := after[key]; !ok {
			changes = append(changes, rollout.Change{Action: rollout.Removed, Kind: b.kind, Namespace: b.namespace, Name: b.name, Diff: unifiedRemoved(b)})
		}
	}
	sort.Slice(changes, func(i, j int) bool {
		if changes[i].Kind != changes[j].Kind {
			return changes[i].Kind < changes[j].Kind
		}
		return changes[i].Name < changes[j].Name
	})
	return changes, nil
}

func parseManifest(m, defaultNamespace string) (map[string]object, error) {
	objs, err := manifest.Objects(m)
	if err != nil {
		return nil, err
	}
	objects := map[string]object{}
	for _, u := range objs {
		o := object{body: u.Object, kind: u.GetKind(), name: u.GetName(), namespace: cmp.Or(u.GetNamespace(), defaultNamespace)}
		objects[u.GroupVersionKind().Group+"/"+o.kind+"/"+o.namespace+"/"+o.name] = o
	}
	return objects, nil
}

// lookup follows a dotted path through nested maps; a missing step yields nil.
func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[part]
	}
	return cur
}

// unified is a unified diff of one resource's YAML, before → after (before nil: added).
// Secret values never appear: each is replaced by a placeholder that says whether it changed.
func unified(before *object, after object) string {
	var a []string
	var prev map[string]any
	if before != nil {
		prev = before.body
		a = lines(render(redact(before.body, nil, before.kind)))
	}
	b := lines(render(redact(after.body, prev, after.kind)))
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: a, B: b, FromFile: "current", ToFile: "target", Context: 3,
	})
	if err != nil {
		return ""
	}
	return text
}

func unifiedRemoved(before object) string {
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(render(redact(before.body, nil, before.kind))), FromFile: "current", ToFile: "target", Context: 3,
	})
	if err != nil {
		return ""
	}
	return text
}

func render(body map[string]any) string {
	out, err := sigsyaml.Marshal(body)
	if err != nil {
		return fmt.Sprintf("(cannot render: %v)\n", err)
	}
	return string(out)
}

// redact replaces the values of a Secret's data and stringData by placeholders; against
// prev (the same Secret before), a changed value says so, so that a diff shows which keys
// change without showing any value.
func redact(body, prev map[string]any, kind string) map[string]any {
	if kind != "Secret" {
		return body
	}
	out := make(map[string]any, len(body))
	for k, v := range body {
		out[k] = v
	}
	for _, field := range []string{"data", "stringData"} {
		m, ok := body[field].(map[string]any)
		if !ok {
			continue
		}
		old, _ := prev[field].(map[string]any)
		red := make(map[string]any, len(m))
		for k, v := range m {
			red[k] = "(redacted)"
			if prev != nil {
				if was, ok := old[k]; ok && !reflect.DeepEqual(was, v) {
					red[k] = "(redacted, changed)"
				}
			}
		}
		out[field] = red
	}
	return out
}

// lines splits text into lines that keep their newline (difflib's SplitLines adds an empty
// last line).
func lines(text string) []string {
	l := strings.SplitAfter(text, "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}
