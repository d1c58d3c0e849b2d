// Package valuemoves moves a release's values to the keys a newer version of its chart reads
// them under: the table of moves per chart and pair of version ranges is data (moves.yaml),
// applied to plain value maps, so that a reused value is moved rather than dropped.
package valuemoves

import (
	_ "embed"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"sigs.k8s.io/yaml"
)

//go:embed moves.yaml
var movesYAML []byte

// Rule is one move of a table entry.
type Rule struct {
	From string `json:"from"`
	To   string `json:"to"`
	// JavaProperty and Env: From holds JVM arguments; only -D<JavaProperty>=<value> moves, as
	// the variable Env appended to the env list at To.
	JavaProperty string `json:"javaProperty,omitempty"`
	Env          string `json:"env,omitempty"`
}

// Entry is the moves from one range of a chart's versions to another.
type Entry struct {
	Chart string `json:"chart"`
	From  string `json:"from"`
	To    string `json:"to"`
	Moves []Rule `json:"moves"`

	from, to *semver.Constraints
}

// Table is the whole table.
type Table struct {
	entries []Entry
}

// Default is the table of moves.yaml.
func Default() Table {
	t, err := Parse(movesYAML)
	if err != nil {
		// moves.yaml is part of the binary, and its test parses it.
		panic(err)
	}
	return t
}

// Parse reads a table in the format of moves.yaml.
func Parse(data []byte) (Table, error) {
	var doc struct {
		Charts []Entry `json:"charts"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return Table{}, fmt.Errorf("value moves: %w", err)
	}
	for i := range doc.Charts {
		e := &doc.Charts[i]
		var err error
		if e.from, err = semver.NewConstraint(e.From); err != nil {
			return Table{}, fmt.Errorf("value moves of %s: from %q: %w", e.Chart, e.From, err)
		}
		if e.to, err = semver.NewConstraint(e.To); err != nil {
			return Table{}, fmt.Errorf("value moves of %s: to %q: %w", e.Chart, e.To, err)
		}
		for _, r := range e.Moves {
			if r.From == "" || r.To == "" || (r.JavaProperty == "") != (r.Env == "") {
				return Table{}, fmt.Errorf("value moves of %s: %+v: from and to are required, javaProperty and env go together", e.Chart, r)
			}
		}
	}
	return Table{entries: doc.Charts}, nil
}

// For returns the moves of an upgrade of chart from version `from` to version `to`, in the
// order they apply; none when the table has no entry for them.
func (t Table) For(chart, from, to string) []Rule {
	vf, errF := semver.NewVersion(from)
	vt, errT := semver.NewVersion(to)
	if errF != nil || errT != nil {
		return nil
	}
	var out []Rule
	for _, e := range t.entries {
		if e.Chart == chart && e.from.Check(vf) && e.to.Check(vt) {
			out = append(out, e.Moves...)
		}
	}
	return out
}

// Move is one value that moved, for the report: its path before any rule and after all of
// them, and the value as it may be shown (secrets and structures summarised).
type Move struct {
	From, To string
	Value    string
	// Note says what happened besides the move ("the value already at keycloak.replicas
	// kept").
	Note string
}

func (m Move) String() string {
	s := fmt.Sprintf("%s → %s", m.From, m.To)
	if m.Value != "" {
		s += " = " + m.Value
	}
	if m.Note != "" {
		s += " (" + m.Note + ")"
	}
	return s
}

// Apply applies rules to a copy of values and returns it with the moves made, one per value
// (leaf) moved, in path order. values is not changed.
func Apply(values map[string]any, rules []Rule) (map[string]any, []Move, error) {
	out := deepCopy(values)
	a := applier{origin: map[string]string{}, values: out}
	for _, r := range rules {
		var err error
		if r.JavaProperty != "" {
			err = a.moveProperty(r)
		} else {
			a.move(r)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	moves := slices.Collect(maps.Values(a.moves))
	slices.SortFunc(moves, func(x, y Move) int { return strings.Compare(x.From, y.From) })
	return out, moves, nil
}

type applier struct {
	values map[string]any
	// origin maps a moved value's current path to its path before the first rule.
	origin map[string]string
	// moves by origin path.
	moves map[string]Move
}

func (a *applier) record(origin, to, value, note string) {
	if a.moves == nil {
		a.moves = map[string]Move{}
	}
	m := Move{From: origin, To: to, Value: value, Note: note}
	if prev, ok := a.moves[origin]; ok && m.Note == "" {
		m.Note = prev.Note
	}
	a.moves[origin] = m
}

func (a *applier) originOf(path string) string {
	if o, ok := a.origin[path]; ok {
		return o
	}
	return path
}

// move moves the value at r.From to r.To, merging maps; every leaf moved is recorded.
func (a *applier) move(r Rule) {
	v, ok := get(a.values, r.From)
	if !ok {
		return
	}
	del(a.values, r.From)
	a.merge(r.From, r.To, v)
}

// merge puts v (found at path from) at path to; a map goes into a map already there key by
// key, and a value already at a leaf wins over the moved one.
func (a *applier) merge(from, to string, v any) {
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		if existing, ok := get(a.values, to); !ok || isMap(existing) {
			for _, k := range slices.Sorted(maps.Keys(m)) {
				a.merge(from+"."+k, to+"."+k, m[k])
			}
			return
		}
	}
	origin := a.originOf(from)
	delete(a.origin, from)
	if _, taken := get(a.values, to); taken {
		a.record(origin, to, show(from, v), "dropped: the value already at "+to+" is kept")
		return
	}
	set(a.values, to, v)
	a.origin[to] = origin
	a.record(origin, to, show(to, v), "")
}

// moveProperty takes -D<property>=<value> out of the JVM arguments at r.From and appends it to
// the env list at r.To as r.Env.
func (a *applier) moveProperty(r Rule) error {
	v, ok := get(a.values, r.From)
	args, isString := v.(string)
	if !ok || !isString {
		return nil
	}
	var rest []string
	var value string
	found := false
	prefix := "-D" + r.JavaProperty + "="
	for _, f := range strings.Fields(args) {
		if after, ok := strings.CutPrefix(f, prefix); ok && !found {
			value, found = strings.Trim(after, `"'`), true
			continue
		}
		rest = append(rest, f)
	}
	if !found {
		return nil
	}
	origin := a.originOf(r.From)
	if len(rest) == 0 {
		del(a.values, r.From)
		delete(a.origin, r.From)
		delete(a.moves, origin)
	} else {
		set(a.values, r.From, strings.Join(rest, " "))
		if m, ok := a.moves[origin]; ok {
			m.Value = show(r.From, strings.Join(rest, " "))
			a.moves[origin] = m
		}
	}
	env, _ := get(a.values, r.To)
	entry := map[string]any{"name": r.Env, "value": value}
	switch e := env.(type) {
	case nil:
		set(a.values, r.To, []any{entry})
	case []any:
		set(a.values, r.To, append(e, entry))
	case string:
		var list []any
		if err := yaml.Unmarshal([]byte(e), &list); err != nil {
			return fmt.Errorf("move %s to %s: %s is not a YAML list: %w", prefix, r.To, r.To, err)
		}
		text, err := yaml.Marshal(append(list, entry))
		if err != nil {
			return err
		}
		set(a.values, r.To, string(text))
	default:
		return fmt.Errorf("move %s to %s: %s is neither a list nor YAML text", prefix, r.To, r.To)
	}
	a.record(origin+" ("+prefix+"…)", r.To+" ("+r.Env+")", show(r.To, value), "")
	return nil
}

// secretKey matches the keys whose values are never shown.
var secretKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|credential|private|apikey|api-key)`)

// show is how a value moved to path may appear in a report: a short scalar as it is; a
// secret-looking key's value, text of several lines, a map or a list only summarised.
func show(path string, v any) string {
	last := path[strings.LastIndex(path, ".")+1:]
	switch x := v.(type) {
	case map[string]any:
		return fmt.Sprintf("{%d keys}", len(x))
	case []any:
		return fmt.Sprintf("[%d items]", len(x))
	case nil:
		return "null"
	}
	if secretKey.MatchString(last) {
		return "(redacted)"
	}
	s, isString := v.(string)
	if !isString {
		return fmt.Sprint(v)
	}
	if strings.Contains(s, "\n") {
		return fmt.Sprintf("(%d lines)", strings.Count(strings.TrimRight(s, "\n"), "\n")+1)
	}
	const maxShown = 60
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func get(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func set(m map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

// del removes the value at path and the maps it leaves empty.
func del(m map[string]any, path string) {
	keys := strings.Split(path, ".")
	parents := []map[string]any{m}
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
		parents = append(parents, m)
	}
	delete(m, keys[len(keys)-1])
	for i := len(keys) - 2; i >= 0; i-- {
		if len(parents[i+1]) > 0 {
			return
		}
		delete(parents[i], keys[i])
	}
}

func deepCopy(v map[string]any) map[string]any {
	if v == nil {
		return map[string]any{}
	}
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = deepCopyValue(x)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}
