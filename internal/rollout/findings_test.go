package rollout_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var (
	storedIngress = rollout.APIConversion{Kind: "Ingress", Name: "identity-id-keycloak", From: "extensions/v1beta1", To: "networking.k8s.io/v1", RemovedIn: "1.22"}
	renderedPDB   = rollout.APIConversion{Kind: "PodDisruptionBudget", Name: "identity-id-keycloak", From: "policy/v1beta1", To: "policy/v1", RemovedIn: "1.25"}
	replicasMove  = rollout.ValueMove{From: "keycloak.keycloak.replicas", To: "keycloak.replicas", Value: "2"}
	pullSecret    = rollout.Reference{Kind: "Secret", Name: "quay-registry-secret", Referrer: "StatefulSet/identity-id-keycloak", Field: "imagePullSecrets"}
	themeConfig   = rollout.Reference{Kind: "ConfigMap", Name: "acme-theme", Referrer: "StatefulSet/identity-id-keycloak", Field: "container keycloak env THEME", Optional: true}
)

// TestPlanFindings: each of the four states the vendor's older charts leave on a current cluster
// is refused, naming the object and the input that fixes it, unless that input is given.
func TestPlanFindings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		target   func(*rollout.Release)
		allow    func(*rollout.PlanRequest)
		refusals []string // substrings, one per refusal
		sentinel error
		warnings []string
		text     []string
	}{
		{
			name:     "removed APIs in the stored release",
			target:   func(r *rollout.Release) { r.RemovedAPIs = []rollout.APIConversion{storedIngress} },
			refusals: []string{"the stored manifest of revision 3 has Ingress/identity-id-keycloak in extensions/v1beta1 (removed in Kubernetes 1.22; served as networking.k8s.io/v1); helm fails to build it"},
			sentinel: rollout.ErrRemovedAPIs,
			text:     []string{"give --map-removed-apis true", "Removed APIs in the stored manifest of revision 3, refused without map-removed-apis:"},
		},
		{
			name:   "removed APIs in the stored release, mapped",
			target: func(r *rollout.Release) { r.RemovedAPIs = []rollout.APIConversion{storedIngress} },
			allow:  func(r *rollout.PlanRequest) { r.MapRemovedAPIs = true },
			text: []string{"Removed APIs in the stored manifest of revision 3, would be mapped before the upgrade (map-removed-apis)",
				"  Ingress/identity-id-keycloak extensions/v1beta1 → networking.k8s.io/v1 (removed in Kubernetes 1.22)"},
		},
		{
			name:     "removed APIs in the render",
			target:   func(r *rollout.Release) { r.ConvertedAPIs = []rollout.APIConversion{renderedPDB} },
			refusals: []string{"chart alfresco-identity-service-3.0.0 renders PodDisruptionBudget/identity-id-keycloak in policy/v1beta1"},
			sentinel: rollout.ErrRemovedAPIs,
			text:     []string{"give --convert-removed-apis true", "turning the part off would delete the live object"},
		},
		{
			name:   "removed APIs in the render, converted",
			target: func(r *rollout.Release) { r.ConvertedAPIs = []rollout.APIConversion{renderedPDB} },
			allow:  func(r *rollout.PlanRequest) { r.ConvertRemovedAPIs = true },
			text:   []string{"Removed APIs in the render of chart alfresco-identity-service-3.0.0, converted (convert-removed-apis):"},
		},
		{
			name:     "reused values that would be dropped",
			target:   func(r *rollout.Release) { r.ValueMoves = []rollout.ValueMove{replicasMove} },
			refusals: []string{"these would be dropped without a word: keycloak.keycloak.replicas → keycloak.replicas = 2"},
			sentinel: rollout.ErrValuesDropped,
			text:     []string{"give --migrate-values true", "  keycloak.keycloak.replicas → keycloak.replicas = 2 (reused)"},
		},
		{
			name:   "reused values moved",
			target: func(r *rollout.Release) { r.ValueMoves = []rollout.ValueMove{replicasMove} },
			allow:  func(r *rollout.PlanRequest) { r.MigrateValues = true },
			text:   []string{"Values chart alfresco-identity-service-3.0.0 reads under other keys, moved (migrate-values):"},
		},
		{
			name: "given values under old keys (reuse-values false): not refused",
			target: func(r *rollout.Release) {
				m := replicasMove
				m.Given = true
				r.ValueMoves = []rollout.ValueMove{m}
			},
			text: []string{"not moved without migrate-values", "keycloak.replicas = 2 (given)"},
		},
		{
			name:     "a missing image pull Secret",
			target:   func(r *rollout.Release) { r.MissingReferences = []rollout.Reference{pullSecret} },
			refusals: []string{`Secret/quay-registry-secret (imagePullSecrets of StatefulSet/identity-id-keycloak) does not exist in namespace "idsvc"`},
			sentinel: rollout.ErrMissingReference,
		},
		{
			name:     "a missing optional ConfigMap",
			target:   func(r *rollout.Release) { r.MissingReferences = []rollout.Reference{themeConfig} },
			warnings: []string{"ConfigMap/acme-theme (container keycloak env THEME of StatefulSet/identity-id-keycloak) does not exist; it is optional"},
		},
		{
			name: "a reference the credentials may not read",
			target: func(r *rollout.Release) {
				s := pullSecret
				s.Unchecked = "not checked: the credentials may not read secrets"
				r.MissingReferences = []rollout.Reference{s}
			},
			warnings: []string{"Secret/quay-registry-secret (imagePullSecrets of StatefulSet/identity-id-keycloak): not checked"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deployed := rollout.Release{Name: "identity", Namespace: "idsvc", Revision: 3, Status: "deployed", ChartName: "alfresco-identity-service", ChartVersion: "2.1.0"}
			target := rollout.Release{ChartName: "alfresco-identity-service", ChartVersion: "3.0.0"}
			tc.target(&target)
			req := rollout.PlanRequest{Release: "identity", Namespace: "idsvc", RecreateStatefulSets: rollout.RecreateOrphan, Advise: (&config.Config{}).Advise}
			if tc.allow != nil {
				tc.allow(&req)
			}
			p, err := rollout.MakePlan(t.Context(), &fakeReleases{current: deployed, target: target},
				fakeDB{db: rollout.Database{ServerMajor: 15, PgDumpMajor: 15}}, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Refusals) != len(tc.refusals) {
				t.Fatalf("refusals %v, want %d", p.Refusals, len(tc.refusals))
			}
			for i, want := range tc.refusals {
				if !strings.Contains(p.Refusals[i].Error(), want) || !errors.Is(p.Refusals[i], tc.sentinel) {
					t.Errorf("refusal %q\nwant one containing %q, wrapping %v", p.Refusals[i], want, tc.sentinel)
				}
			}
			for _, want := range tc.warnings {
				if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
					t.Errorf("warnings %q lack %q", p.Warnings, want)
				}
			}
			var text bytes.Buffer
			if err := p.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.text {
				if !strings.Contains(text.String(), want) {
					t.Errorf("plan text lacks %q:\n%s", want, text.String())
				}
			}
		})
	}
}

// mapper is the world's release port that can map a stored manifest: revision 4 (stored in
// removed APIs) becomes revision 5.
type mapper struct {
	*world
}

func (m mapper) MapRemovedAPIs(ctx context.Context, rel rollout.Release) (rollout.Release, []rollout.APIConversion, error) {
	m.call(ctx, "map removed APIs")
	m.revs++
	mapped := m.deployed
	mapped.Revision = m.revs
	mapped.Manifest = "# mapped\n" + m.deployed.Manifest
	m.deployed, m.current = mapped, mapped
	return mapped, []rollout.APIConversion{storedIngress}, nil
}

// TestUpgradeMapsRemovedAPIsFirst: the stored manifest is mapped before anything is scaled or
// backed up, and a failing upgrade returns to the mapped revision, never to the unmapped one
// helm cannot build.
func TestUpgradeMapsRemovedAPIsFirst(t *testing.T) {
	w := newWorld()
	w.target.RemovedAPIs = []rollout.APIConversion{storedIngress}
	w.waitErr = notReady
	req := request()
	p := w.pipeline()

	rep := p.Upgrade(t.Context(), req)
	if rep.ExitCode() != rollout.ExitRefused || w.called("scale down") || !errors.Is(rep.Failure, rollout.ErrRemovedAPIs) {
		t.Fatalf("without map-removed-apis: exit %d, calls %q, failure %v", rep.ExitCode(), w.calls, rep.Failure)
	}

	w.calls = nil
	p.Releases = mapper{w}
	req.MapRemovedAPIs = true
	rep = p.Upgrade(t.Context(), req)
	want := []string{"lock", "current", "current", "render", "inspect", "map removed APIs", "scale down", "values 5", "backup r5", "upgrade", "wait",
		"scale down", "drift", "mark failed 6", "rollback 5", "wait rolled-back", "unlock lease"}
	if !slices.Equal(w.calls, want) {
		t.Errorf("calls:\n got %q\nwant %q", w.calls, want)
	}
	if rep.ExitCode() != rollout.ExitRolledBack || rep.PreviousRevision != 5 || rep.Plan.Current.Revision != 5 {
		t.Errorf("exit %d, previous revision %d, plan's current %d; want 1, 5, 5", rep.ExitCode(), rep.PreviousRevision, rep.Plan.Current.Revision)
	}
	if s := rep.Timeline[slices.IndexFunc(rep.Timeline, func(s rollout.Step) bool { return s.Name == "map removed APIs" })]; s.Note != "revision 4 → 5: 1 objects (Ingress/identity-id-keycloak)" {
		t.Errorf("timeline note %q", s.Note)
	}
}

// TestJournalRecordsTheMappedRevision: a run killed after the map returns to the mapped
// revision, and its journal says which revision it mapped.
func TestJournalRecordsTheMappedRevision(t *testing.T) {
	j, p := newJournaled()
	j.world.target.RemovedAPIs = []rollout.APIConversion{storedIngress}
	p.Releases = journaledMapper{j}
	req := request()
	req.MapRemovedAPIs = true
	if rep := p.Upgrade(t.Context(), req); rep.ExitCode() != rollout.ExitOK {
		t.Fatalf("exit %d: %v", rep.ExitCode(), rep.Err())
	}
	if j.journal.RecordedRevision != 5 || j.journal.MappedFrom != 4 {
		t.Errorf("journal recorded revision %d, mapped from %d; want 5 and 4", j.journal.RecordedRevision, j.journal.MappedFrom)
	}
}

type journaledMapper struct {
	*journaled
}

func (m journaledMapper) MapRemovedAPIs(ctx context.Context, rel rollout.Release) (rollout.Release, []rollout.APIConversion, error) {
	return mapper{m.world}.MapRemovedAPIs(ctx, rel)
}
