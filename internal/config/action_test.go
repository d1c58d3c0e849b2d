package config

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// actionFile is the part of action.yml this package answers for. Defaults and required flags
// are typed strictly: an unquoted number or a quoted boolean fails to decode, and so does an
// unknown key (a misspelt `required`, say).
type actionFile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Author      string `json:"author"`
	Branding    struct {
		Icon  string `json:"icon"`
		Color string `json:"color"`
	} `json:"branding"`
	Inputs map[string]struct {
		Description string  `json:"description"`
		Required    bool    `json:"required"`
		Default     *string `json:"default"`
	} `json:"inputs"`
	Outputs map[string]struct {
		Description string `json:"description"`
	} `json:"outputs"`
	Runs struct {
		Using string `json:"using"`
		Image string `json:"image"`
	} `json:"runs"`
}

func TestActionYAMLMatchesInputs(t *testing.T) {
	data, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Convert without a target type, so that YAML types survive (yaml.Unmarshal would turn an
	// unquoted 5432 into the string a *string field asks for).
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	var action actionFile
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&action); err != nil {
		t.Fatalf("action.yml: %v (defaults must be quoted strings, required a boolean)", err)
	}

	inputs := Inputs()
	for _, in := range inputs {
		got, ok := action.Inputs[in.Name]
		if !ok {
			t.Errorf("action.yml lacks input %q", in.Name)
			continue
		}
		if got.Description == "" {
			t.Errorf("action.yml input %q has no description", in.Name)
		}
		if got.Required != in.Required {
			t.Errorf("action.yml input %q: required %v, want %v", in.Name, got.Required, in.Required)
		}
		switch {
		case in.Required && got.Default != nil && *got.Default != "":
			t.Errorf("action.yml input %q is required and has default %q", in.Name, *got.Default)
		case !in.Required && got.Default == nil:
			t.Errorf("action.yml input %q has no default; want %q", in.Name, in.Default)
		case !in.Required && *got.Default != in.Default:
			t.Errorf("action.yml input %q: default %q, want %q (the action default in config.Inputs)", in.Name, *got.Default, in.Default)
		}
	}
	for name := range action.Inputs {
		if !slices.ContainsFunc(inputs, func(in Input) bool { return in.Name == name }) {
			t.Errorf("action.yml has input %q that config.Inputs does not know", name)
		}
	}

	for _, name := range []string{"result", "previous-revision", "revision", "backup-location", "backup-sha256",
		"backup-bytes", "failure-reason", "duration-seconds"} {
		if out, ok := action.Outputs[name]; !ok || out.Description == "" {
			t.Errorf("action.yml lacks output %q or its description", name)
		}
	}
	if action.Name == "" || action.Description == "" || action.Branding.Icon == "" || action.Branding.Color == "" {
		t.Errorf("action.yml needs name, description and branding (icon, color) for the Marketplace")
	}
	if action.Runs.Using != "docker" || action.Runs.Image != "Dockerfile" {
		t.Errorf("action.yml runs = %+v, want using: docker, image: Dockerfile", action.Runs)
	}
}

// TestActionYAMLIsGenerated: action.yml's inputs are what the table makes of them; after a
// change to the table, go generate ./internal/config writes them.
func TestActionYAMLIsGenerated(t *testing.T) {
	data, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceActionYAMLInputs(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Error("action.yml's inputs differ from the table of inputs: run go generate ./internal/config")
	}
}
