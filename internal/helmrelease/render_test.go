package helmrelease

import (
	"slices"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
)

// TestUnreadValues lists the user-supplied values a chart declares no key for, its own or a
// subchart's (by name or alias), as the real 2.1.0 → 3.0.0 move of keycloak.keycloak.replicas
// to keycloak.replicas needs; global and keys below a declared leaf or empty map pass.
func TestUnreadValues(t *testing.T) {
	keycloak := &chart.Chart{Metadata: &chart.Metadata{Name: "keycloak"}, Values: map[string]any{
		"replicas": 1, "resources": map[string]any{"limits": map[string]any{}},
	}}
	parent := &chart.Chart{
		Metadata: &chart.Metadata{Name: "alfresco-identity-service", Dependencies: []*chart.Dependency{{Name: "postgresql", Alias: "db"}}},
		Values:   map[string]any{"ingress": map[string]any{"enabled": true}, "extra": map[string]any{}},
	}
	postgres := &chart.Chart{Metadata: &chart.Metadata{Name: "postgresql"}, Values: map[string]any{"postgresqlPassword": ""}}
	parent.SetDependencies(keycloak, postgres)
	config := map[string]any{
		"global":  map[string]any{"anything": 1},
		"ingress": map[string]any{"enabled": false, "hostName": "id.example.com"},
		"extra":   map[string]any{"free": map[string]any{"form": 1}},
		"keycloak": map[string]any{
			"replicas":  2,
			"keycloak":  map[string]any{"replicas": 2},
			"resources": map[string]any{"limits": map[string]any{"memory": "1Gi"}},
		},
		"db":         map[string]any{"postgresqlPassword": "x", "persistence": map[string]any{"size": "8Gi"}},
		"postgresql": map[string]any{"postgresqlPassword": "x"},
	}
	got := unreadValues(config, parent)
	want := []string{"db.persistence", "ingress.hostName", "keycloak.keycloak"}
	if !slices.Equal(got, want) {
		t.Errorf("unread values %q, want %q", got, want)
	}
}
