package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the README's inputs and outputs tables from action.yml")

const (
	tableStart = "<!-- inputs-outputs: generated from action.yml by `go test ./internal/config -run README -update` -->\n"
	tableEnd   = "<!-- end inputs-outputs -->\n"
)

// readmeTables renders the inputs and outputs of action.yml as Markdown tables, in the order
// of the input table (Inputs) and of action.yml's outputs.
func readmeTables(t *testing.T, action []byte) string {
	t.Helper()
	var doc struct {
		Inputs map[string]struct {
			Description string  `json:"description"`
			Required    bool    `json:"required"`
			Default     *string `json:"default"`
		} `json:"inputs"`
	}
	if err := yaml.Unmarshal(action, &doc); err != nil {
		t.Fatal(err)
	}
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	var b strings.Builder
	b.WriteString("| Input | Required | Default | Description |\n|---|---|---|---|\n")
	for _, in := range Inputs() {
		a, ok := doc.Inputs[in.Name]
		if !ok {
			t.Fatalf("action.yml lacks input %s", in.Name)
		}
		req, def := "", ""
		if a.Required {
			req = "yes"
		}
		if a.Default != nil && *a.Default != "" {
			def = "`" + cell(*a.Default) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", in.Name, req, def, cell(a.Description))
	}
	b.WriteString("\n| Output | Description |\n|---|---|\n")
	var ordered struct {
		Outputs map[string]struct {
			Description string `json:"description"`
		} `json:"outputs"`
	}
	if err := yaml.Unmarshal(action, &ordered); err != nil {
		t.Fatal(err)
	}
	for _, name := range outputOrder(action) {
		fmt.Fprintf(&b, "| `%s` | %s |\n", name, cell(ordered.Outputs[name].Description))
	}
	return b.String()
}

// outputOrder lists the output names in the order action.yml gives them.
func outputOrder(action []byte) []string {
	var names []string
	in := false
	for _, line := range strings.Split(string(action), "\n") {
		switch {
		case line == "outputs:":
			in = true
		case in && len(line) > 0 && line[0] != ' ' && line[0] != '#':
			in = false
		case in && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			names = append(names, strings.TrimSuffix(strings.TrimSpace(line), ":"))
		}
	}
	return names
}

func TestREADMEInputsAndOutputsMatchActionYAML(t *testing.T) {
	action, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start, end := bytes.Index(readme, []byte(tableStart)), bytes.Index(readme, []byte(tableEnd))
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the generated tables between %q and %q", strings.TrimSpace(tableStart), strings.TrimSpace(tableEnd))
	}
	want := readmeTables(t, action)
	got := string(readme[start+len(tableStart) : end])
	if got == want {
		return
	}
	if *update {
		out := append(append(append([]byte{}, readme[:start+len(tableStart)]...), want...), readme[end:]...)
		if err := os.WriteFile("../../README.md", out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's inputs/outputs tables differ from action.yml; run go test ./internal/config -run README -update\n--- README\n%s\n--- action.yml\n%s", got, want)
}
