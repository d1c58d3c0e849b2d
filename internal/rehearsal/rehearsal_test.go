package rehearsal_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rehearsal"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestRehearsal runs `make rehearsal`'s job end to end with a freshly built binary: the plan
// must refuse the vendor's upgrade for the postgres selector trap and accept it with orphan
// re-creation; the upgrade must succeed, and the broken one must be rolled back, on a real
// cluster and a real seeded database.
func TestRehearsal(t *testing.T) {
	root, err := testworld.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(t.TempDir(), "identity-upgrade")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", binary, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	var out strings.Builder
	steps, err := rehearsal.Run(t.Context(), rehearsal.Options{Binary: binary, Root: root, Out: &out})
	if err != nil {
		t.Fatalf("rehearsal: %v\n%s", err, out.String())
	}
	if len(steps) != 4 {
		t.Fatalf("%d steps, want 4\n%s", len(steps), out.String())
	}
	want := []struct {
		code int
		text []string
	}{
		{2, []string{"StatefulSet/identity-postgresql-id  (immutable: spec.selector)", "set recreate-statefulsets: orphan", `86 changesets, latest "map-remove-ri", migration model 11.0.3`}},
		{0, []string{"Ready: the upgrade would start", "Job/identity-id-rollback-restore (post-rollback)", "on failure: roll back to revision 1"}},
		{0, []string{"Upgraded identity: revision 1 → 2", "re-created [identity-postgresql-id]"}},
		{1, []string{"Failed and rolled back: identity is back at revision 2's release (now revision 4)", "identity-id-keycloak-0", "stability window"}},
	}
	for i, s := range steps {
		if s.ExitCode != want[i].code {
			t.Errorf("step %d (%s): exit %d, want %d\n%s", i, s.Title, s.ExitCode, want[i].code, s.Output)
		}
		for _, text := range want[i].text {
			if !strings.Contains(s.Output, text) {
				t.Errorf("step %d output lacks %q:\n%s", i, text, s.Output)
			}
		}
	}
}
