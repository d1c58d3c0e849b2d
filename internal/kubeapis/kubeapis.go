// Package kubeapis converts objects of a Helm manifest whose apiVersion the cluster no longer
// serves to the API that replaced it, the way the helm-mapkubeapis plugin does for a stored
// release, and also converting the fields whose schema changed (an Ingress's backends, a
// workload's selector). Which APIs were removed is data (removed.yaml); whether an object
// needs converting is the cluster's answer (its discovery), never a version comparison.
package kubeapis

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

//go:embed removed.yaml
var removedYAML []byte

// API is one removed API: an apiVersion and kind that clusters stopped serving.
type API struct {
	APIVersion   string `json:"apiVersion"`
	Kind         string `json:"kind"`
	DeprecatedIn string `json:"deprecatedIn"`
	RemovedIn    string `json:"removedIn"`
	// Replacement is the apiVersion of the same kind that replaced it; "" when none did.
	Replacement string `json:"replacement"`
	// Schema names the conversion of the object's fields (see removed.yaml).
	Schema string `json:"schema"`
}

// schemas are the conversions removed.yaml may name.
var schemas = map[string]func(obj map[string]any) ([]string, error){
	"":            convertSame,
	"same":        convertSame,
	"ingress":     convertIngress,
	"workload":    convertWorkload,
	"pdb":         convertPDB,
	"hpa-v2beta1": convertHPAv2beta1,
	"none":        convertNone,
}

// Map is the list of removed APIs, by apiVersion and kind.
type Map struct {
	apis map[string]API
}

// ErrNoConversion is wrapped by Convert's error for an object whose removed API has no
// automatic conversion, or no replacement the cluster serves.
var ErrNoConversion = errors.New("no automatic conversion")

// Removed is the map of removed.yaml.
func Removed() Map {
	m, err := ParseMap(removedYAML)
	if err != nil {
		// removed.yaml is part of the binary, and its test parses it.
		panic(err)
	}
	return m
}

// ParseMap reads a map in the format of removed.yaml.
func ParseMap(data []byte) (Map, error) {
	var doc struct {
		APIs []API `json:"apis"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return Map{}, fmt.Errorf("removed APIs: %w", err)
	}
	m := Map{apis: map[string]API{}}
	for _, a := range doc.APIs {
		if a.APIVersion == "" || a.Kind == "" || a.RemovedIn == "" {
			return Map{}, fmt.Errorf("removed APIs: %s %s: apiVersion, kind and removedIn are required", a.APIVersion, a.Kind)
		}
		if _, ok := schemas[a.Schema]; !ok {
			return Map{}, fmt.Errorf("removed APIs: %s %s: unknown schema %q", a.APIVersion, a.Kind, a.Schema)
		}
		key := a.APIVersion + "/" + a.Kind
		if _, dup := m.apis[key]; dup {
			return Map{}, fmt.Errorf("removed APIs: %s %s listed twice", a.APIVersion, a.Kind)
		}
		m.apis[key] = a
	}
	return m, nil
}

// Lookup returns the removed API of apiVersion and kind, if it is one.
func (m Map) Lookup(apiVersion, kind string) (API, bool) {
	a, ok := m.apis[apiVersion+"/"+kind]
	return a, ok
}

// Served says whether the cluster serves a kind at an apiVersion ("group/version", or "v1" for
// the core group): the answer of its discovery.
type Served func(apiVersion, kind string) bool

// Conversion is one object converted from a removed API.
type Conversion struct {
	Kind      string
	Namespace string
	Name      string
	// From is the object's apiVersion, RemovedIn the Kubernetes version that removed it; To the
	// apiVersion it was converted to, "" when the object was dropped (no replacement exists).
	From      string
	To        string
	RemovedIn string
	// Fields says what changed besides the apiVersion, one short note each.
	Fields []string
}

// Object names the converted object as "Kind/name".
func (c Conversion) Object() string { return c.Kind + "/" + c.Name }

// Convert converts obj in place when the cluster does not serve its apiVersion and the map
// knows it as removed, step by step along the replacements until one the cluster serves. It
// returns nil for an object that needs nothing (served, or not a removed API: a custom
// resource whose definition is missing is not this package's business). An object whose
// removed API has no replacement is left as it is and reported with To "": the caller drops
// it. The error wraps ErrNoConversion when no served replacement can be reached automatically.
func (m Map) Convert(obj map[string]any, served Served) (*Conversion, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" || served(apiVersion, kind) {
		return nil, nil
	}
	first, ok := m.Lookup(apiVersion, kind)
	if !ok {
		return nil, nil
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	c := &Conversion{Kind: kind, Namespace: ns, Name: name, From: apiVersion, RemovedIn: first.RemovedIn}
	cur := apiVersion
	for range len(m.apis) {
		api, ok := m.Lookup(cur, kind)
		if !ok {
			return nil, fmt.Errorf("%s %s: %w: the cluster serves neither it nor its replacement %s", c.Object(), apiVersion, ErrNoConversion, cur)
		}
		if api.Replacement == "" {
			return c, nil
		}
		fields, err := schemas[api.Schema](obj)
		if err != nil {
			return nil, fmt.Errorf("%s %s → %s: %w", c.Object(), cur, api.Replacement, err)
		}
		c.Fields = append(c.Fields, fields...)
		obj["apiVersion"] = api.Replacement
		cur = api.Replacement
		if served(cur, kind) {
			c.To = cur
			return c, nil
		}
	}
	return nil, fmt.Errorf("%s %s: %w: the replacements of removed.yaml form a loop", c.Object(), apiVersion, ErrNoConversion)
}

// ConvertManifest converts every object of a Helm manifest (multi-document YAML with "---"
// lines and "# Source:" comments, as helm stores and post-renders it) that the cluster does
// not serve. Documents that need nothing keep their text byte for byte; a converted one keeps
// its comments and is written out again (keys sorted); one without a replacement is dropped.
// An error names every object that cannot be converted.
func (m Map) ConvertManifest(manifest string, served Served) (string, []Conversion, error) {
	docs := splitDocuments(manifest)
	var out strings.Builder
	var conversions []Conversion
	var errs []error
	for _, d := range docs {
		obj, err := d.object()
		if err != nil {
			return "", nil, err
		}
		var c *Conversion
		if obj != nil {
			c, err = m.Convert(obj, served)
		}
		switch {
		case err != nil:
			errs = append(errs, err)
			out.WriteString(d.text)
		case c == nil:
			out.WriteString(d.text)
		case c.To == "":
			conversions = append(conversions, *c)
		default:
			conversions = append(conversions, *c)
			body, err := yaml.Marshal(obj)
			if err != nil {
				return "", nil, fmt.Errorf("%s: write converted object: %w", c.Object(), err)
			}
			out.WriteString(d.separator + d.comments + string(body))
		}
	}
	if len(errs) > 0 {
		return "", conversions, errors.Join(errs...)
	}
	return out.String(), conversions, nil
}

// document is one document of a manifest: its "---" line (with its newline, or "" for the
// first document), its leading comment lines, and its whole text.
type document struct {
	separator, comments, body, text string
}

// object decodes the document; nil for an empty one or a List (whose items are not converted).
func (d document) object() (map[string]any, error) {
	if strings.TrimSpace(d.body) == "" {
		return nil, nil
	}
	var obj map[string]any
	if err := utilyaml.Unmarshal([]byte(d.body), &obj); err != nil {
		return nil, fmt.Errorf("manifest document %q: %w", firstLine(d.comments+d.body), err)
	}
	if kind, _ := obj["kind"].(string); strings.HasSuffix(kind, "List") {
		if _, ok := obj["items"]; ok {
			return nil, nil
		}
	}
	return obj, nil
}

// splitDocuments cuts a manifest at its "---" lines; the documents' texts joined give the
// manifest back.
func splitDocuments(manifest string) []document {
	var docs []document
	cur := document{}
	inHead := true
	flush := func() {
		if cur.text != "" {
			docs = append(docs, cur)
		}
	}
	for line := range strings.Lines(manifest) {
		trimmed := strings.TrimRight(line, " \t\r\n")
		if trimmed == "---" || strings.HasPrefix(trimmed, "--- ") {
			flush()
			cur = document{separator: line, text: line}
			inHead = true
			continue
		}
		cur.text += line
		if inHead && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "") {
			cur.comments += line
			continue
		}
		inHead = false
		cur.body += line
	}
	flush()
	return docs
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
