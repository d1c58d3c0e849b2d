package rollout_test

import (
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// TestReportTextNamesTheArtifact: a backup stored as a GitHub artifact is named by its id and
// page under the backup line; a backup elsewhere has no artifact line.
func TestReportTextNamesTheArtifact(t *testing.T) {
	const url = "https://github.com/acme/identity/actions/runs/16000000001/artifacts/3141592653"
	for _, tc := range []struct {
		name   string
		backup rollout.Backup
		want   string // "" for no artifact line
	}{
		{"artifact", rollout.Backup{Locations: []string{"artifact:identity-r4"}, ArtifactID: 3141592653, ArtifactURL: url},
			"  backup: artifact:identity-r4 (0 bytes, sha256 )\n  artifact: id 3141592653, " + url + "\n"},
		{"artifact without a page", rollout.Backup{Locations: []string{"artifact:identity-r4"}, ArtifactID: 3141592653},
			"  artifact: id 3141592653\n"},
		{"path store", rollout.Backup{Locations: []string{"/backups/identity-r4"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := rollout.Report{Result: rollout.Upgraded, Release: "identity", PreviousRevision: 4, Revision: 5, Backup: &tc.backup}
			var b strings.Builder
			if err := rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && strings.Contains(b.String(), "artifact: id") || tc.want != "" && !strings.Contains(b.String(), tc.want) {
				t.Errorf("report:\n%s\nwant %q", b.String(), tc.want)
			}
		})
	}
}
