package rehearsal_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rehearsal"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestRehearsal runs `make rehearsal`'s job end to end with a freshly built binary, on a
// PostgreSQL 11 server: the plan must refuse the vendor's upgrade for the postgres selector trap
// and accept it with orphan re-creation; the upgrade must succeed while the simulated Keycloak 12
// migrates the schema; the broken one, whose simulated Keycloak changes rows in place, must be
// rolled back with the database restored and verified, ending equal to what it was before. Every
// run reaches the release's bundled database only through a port-forward, with the password
// from the release's Secret.
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
	res, err := rehearsal.Run(t.Context(), rehearsal.Options{Binary: binary, Root: root, Out: &out})
	if err != nil {
		t.Fatalf("rehearsal: %v\n%s", err, out.String())
	}
	if len(res.Steps) != 5 {
		t.Fatalf("%d steps, want 5\n%s", len(res.Steps), out.String())
	}
	want := []struct {
		code     int
		text     []string
		keycloak []string
	}{
		{0, []string{"Rehearsed the upgrade of identity on a clone", "2 changesets applied (86 → 88)", "OIDC discovery of 3 realms"},
			[]string{"migrated the schema to Keycloak 12"}},
		{2, []string{"StatefulSet/identity-postgresql-id  (immutable: spec.selector)", "give --recreate-statefulsets orphan",
			`86 changesets, latest "map-remove-ri", migration model 11.0.3`, "client tools: PostgreSQL 15."}, nil},
		{0, []string{"Ready: the upgrade would start", "Job/identity-id-rollback-restore (post-rollback)", "on failure: roll back to revision 1"}, nil},
		{0, []string{"Upgraded identity: revision 1 → 2", "re-created [identity-postgresql-id]"},
			[]string{"migrated the schema to Keycloak 12", `88 changesets (latest "12.1.0-add-realm-localization-table"), migration model 12.0.4`}},
		{1, []string{"Failed and rolled back: identity is back at revision 2's release (now revision 4); the database was restored from the backup.",
			"identity-id-keycloak-0", "stability window", "data changed"},
			[]string{"UPDATE realm", "UPDATE credential", "INSERT event_entity"}},
	}
	for i, s := range res.Steps {
		if s.ExitCode != want[i].code {
			t.Errorf("step %d (%s): exit %d, want %d\n%s", i, s.Title, s.ExitCode, want[i].code, s.Output)
		}
		for _, text := range want[i].text {
			if !strings.Contains(s.Output, text) {
				t.Errorf("step %d output lacks %q:\n%s", i, text, s.Output)
			}
		}
		if want[i].keycloak == nil && s.Keycloak != "" {
			t.Errorf("step %d: the simulated Keycloak acted: %s", i, s.Keycloak)
		}
		for _, text := range want[i].keycloak {
			if !strings.Contains(s.Keycloak, text) {
				t.Errorf("step %d: the simulated Keycloak's account %q lacks %q", i, s.Keycloak, text)
			}
		}
	}
	broken := res.Steps[len(res.Steps)-1].Output
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s*restore database\s+\S+\s+ok\s+restored .*data changed`),
		regexp.MustCompile(`(?m)^\s*verify database\s+\S+\s+ok\b`),
	} {
		if !re.MatchString(broken) {
			t.Errorf("the broken upgrade's report has no line matching %s:\n%s", re, broken)
		}
	}
	if res.BeforeBroken.Sum == "" || res.AfterBroken.Sum != res.BeforeBroken.Sum {
		t.Errorf("database digest after the broken upgrade %q, before %q; differences:\n%s",
			res.AfterBroken.Sum, res.BeforeBroken.Sum, strings.Join(res.BeforeBroken.Diff(res.AfterBroken), "\n"))
	}
	if n := res.BeforeBroken.Tables(); n < 31 {
		t.Errorf("the digest covers %d tables, want the fixture's 30 and Keycloak 12's realm_localizations", n)
	}
	forward := regexp.MustCompile(`msg="port-forward reaches pod" pod=identity-postgresql-id-0 uid=(\S+)`)
	var uids []string
	for i, s := range res.Steps {
		if slices.Contains(s.Args, "--db-host") || !slices.Contains(s.Args, "--db-port-forward") {
			t.Errorf("step %d: identity-upgrade %s: want --db-port-forward and no --db-host", i, strings.Join(s.Args, " "))
		}
		if !strings.Contains(s.Output, `msg="db-port-forward auto: the release's PostgreSQL" target=statefulset/identity-postgresql-id:5432`) {
			t.Errorf("step %d: db-port-forward auto did not find the release's PostgreSQL StatefulSet:\n%s", i, s.Output)
		}
		m := forward.FindStringSubmatch(s.Output)
		if m == nil {
			t.Errorf("step %d: the port-forward reached no PostgreSQL pod:\n%s", i, s.Output)
			continue
		}
		uids = append(uids, m[1])
	}
	// The upgrade re-created the postgres StatefulSet: the broken one's forward reaches the new pod.
	if len(uids) == 4 && uids[0] == uids[3] {
		t.Errorf("the broken upgrade's port-forward reached the pod of uid %s, which the upgrade before it replaced", uids[3])
	}
	if res.Forwarded == 0 {
		t.Error("no connection went through the cluster's port-forward")
	}
	for _, text := range []string{"starting PostgreSQL 11", "checked: the broken upgrade exited 1", "through the API server"} {
		if !strings.Contains(out.String(), text) {
			t.Errorf("the narration lacks %q:\n%s", text, out.String())
		}
	}
}
