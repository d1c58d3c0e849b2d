package valuemoves_test

import (
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/valuemoves"
)

const chart = "alfresco-identity-service"

func TestTableFor(t *testing.T) {
	table := valuemoves.Default()
	for _, c := range []struct {
		from, to string
		moves    int
	}{
		{"2.1.0", "3.0.0", 3},
		{"2.0.0", "3.2.1", 3},
		{"3.0.0", "3.0.1", 0},
		{"2.1.0", "2.1.1", 0},
		{"1.1.0", "3.0.0", 0},
		{"not-a-version", "3.0.0", 0},
	} {
		if got := table.For(chart, c.from, c.to); len(got) != c.moves {
			t.Errorf("For(%s → %s) = %d moves, want %d", c.from, c.to, len(got), c.moves)
		}
	}
	if got := table.For("another-chart", "2.1.0", "3.0.0"); len(got) != 0 {
		t.Errorf("moves for another chart: %v", got)
	}
	for _, bad := range []string{
		"charts: [{chart: c, from: '>=nope', to: '>=1', moves: []}]",
		"charts: [{chart: c, from: '>=1', to: '>=2', moves: [{from: a}]}]",
		"charts: [{chart: c, from: '>=1', to: '>=2', moves: [{from: a, to: b, env: X}]}]",
		"charts: [{chart: c, from: '>=1', to: '>=2', typo: 1}]",
	} {
		if _, err := valuemoves.Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted it", bad)
		}
	}
}

// The values a customer gave chart 2.1.0 (Identity Service 1.3): Keycloak's under
// keycloak.keycloak, the realm imported with a JVM argument.
const customer21 = `
keycloak:
  keycloak:
    replicas: 2
    password: s3cret-admin
    resources: {limits: {memory: 2Gi}}
    extraArgs: -Dkeycloak.import=/realm/alfresco-realm.json -Dkeycloak.profile.feature.upload_scripts=enabled
    extraEnv: |
      - name: KEYCLOAK_LOGLEVEL
        value: DEBUG
    extraInitContainers:
      - name: theme
        image: acme/theme:1
    persistence:
      deployPostgres: false
      dbVendor: postgres
  replicas: 3
postgresql:
  host: db.acme.internal
`

func TestApplyIdentityService2To3(t *testing.T) {
	var in map[string]any
	if err := yaml.Unmarshal([]byte(customer21), &in); err != nil {
		t.Fatal(err)
	}
	original, _ := yaml.Marshal(in)
	out, moves, err := valuemoves.Apply(in, valuemoves.Default().For(chart, "2.1.0", "3.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := yaml.Marshal(in); string(again) != string(original) {
		t.Error("Apply changed its input")
	}
	want := `keycloak:
  extraArgs: -Dkeycloak.profile.feature.upload_scripts=enabled
  extraEnv: |
    - name: KEYCLOAK_LOGLEVEL
      value: DEBUG
    - name: KEYCLOAK_IMPORT
      value: /realm/alfresco-realm.json
  extraInitContainers:
  - image: acme/theme:1
    name: theme
  password: s3cret-admin
  persistence:
    dbVendor: postgres
  postgresql:
    enabled: false
  replicas: 3
  resources:
    limits:
      memory: 2Gi
postgresql:
  host: db.acme.internal
`
	if got, _ := yaml.Marshal(out); string(got) != want {
		t.Errorf("moved values:\n%s\nwant:\n%s", got, want)
	}
	var lines []string
	for _, m := range moves {
		lines = append(lines, m.String())
	}
	wantMoves := []string{
		`keycloak.keycloak.extraArgs → keycloak.extraArgs = "-Dkeycloak.profile.feature.upload_scripts=enabled"`,
		`keycloak.keycloak.extraArgs (-Dkeycloak.import=…) → keycloak.extraEnv (KEYCLOAK_IMPORT) = "/realm/alfresco-realm.json"`,
		`keycloak.keycloak.extraEnv → keycloak.extraEnv = (2 lines)`,
		`keycloak.keycloak.extraInitContainers → keycloak.extraInitContainers = [1 items]`,
		`keycloak.keycloak.password → keycloak.password = (redacted)`,
		`keycloak.keycloak.persistence.dbVendor → keycloak.persistence.dbVendor = "postgres"`,
		`keycloak.keycloak.persistence.deployPostgres → keycloak.postgresql.enabled = false`,
		`keycloak.keycloak.replicas → keycloak.replicas = 2 (dropped: the value already at keycloak.replicas is kept)`,
		`keycloak.keycloak.resources.limits.memory → keycloak.resources.limits.memory = "2Gi"`,
	}
	if !reflect.DeepEqual(lines, wantMoves) {
		t.Errorf("moves:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantMoves, "\n"))
	}
	if strings.Contains(strings.Join(lines, "\n"), "s3cret") {
		t.Error("a secret value is shown")
	}
}

func TestApplyEdgeCases(t *testing.T) {
	rules := valuemoves.Default().For(chart, "2.1.0", "3.0.0")
	// Nothing to move: nothing moved, the values equal.
	in := map[string]any{"replicaCount": 2, "keycloak": map[string]any{"replicas": 1}}
	out, moves, err := valuemoves.Apply(in, rules)
	if err != nil || len(moves) != 0 || !reflect.DeepEqual(out, in) {
		t.Errorf("Apply(new-style values) = %v, %v, %v", out, moves, err)
	}
	// Only the realm import in extraArgs: extraArgs goes, the env list is made.
	in = map[string]any{"keycloak": map[string]any{"keycloak": map[string]any{"extraArgs": "-Dkeycloak.import=/realm/r.json"}}}
	out, moves, err = valuemoves.Apply(in, rules)
	want := map[string]any{"keycloak": map[string]any{"extraEnv": []any{map[string]any{"name": "KEYCLOAK_IMPORT", "value": "/realm/r.json"}}}}
	if err != nil || !reflect.DeepEqual(out, want) || len(moves) != 1 {
		t.Errorf("Apply(extraArgs only) = %v, %v, %v; want %v and one move", out, moves, err, want)
	}
	// An env list that is not YAML: an error naming it.
	in = map[string]any{"keycloak": map[string]any{"keycloak": map[string]any{"extraArgs": "-Dkeycloak.import=/r", "extraEnv": "{not: [a list"}}}
	if _, _, err := valuemoves.Apply(in, rules); err == nil || !strings.Contains(err.Error(), "keycloak.extraEnv") {
		t.Errorf("Apply(broken extraEnv) error = %v", err)
	}
	// No values at all.
	if out, moves, err := valuemoves.Apply(nil, rules); err != nil || len(out) != 0 || len(moves) != 0 {
		t.Errorf("Apply(nil) = %v, %v, %v", out, moves, err)
	}
}
