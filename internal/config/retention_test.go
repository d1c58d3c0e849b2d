package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateRetentionDays(t *testing.T) {
	tests := []struct {
		name   string
		inputs map[string]string
		want   []string
		text   string
		days   int
	}{
		{name: "empty: the repository's default"},
		{name: "one", inputs: map[string]string{"retention-days": "1"}, days: 1},
		{name: "ninety", inputs: map[string]string{"retention-days": "90"}, days: 90},
		{name: "zero", inputs: map[string]string{"retention-days": "0"}, want: []string{"retention-days"},
			text: "retention-days: 0 is outside 1-90: give the days GitHub keeps the backup artifact, or leave it empty for the repository's default"},
		{name: "ninety-one", inputs: map[string]string{"retention-days": "91"}, want: []string{"retention-days"}, text: "91 is outside 1-90"},
		{name: "negative", inputs: map[string]string{"retention-days": "-3"}, want: []string{"retention-days"}, text: "-3 is outside 1-90"},
		{name: "not a number", inputs: map[string]string{"retention-days": "30d"}, want: []string{"retention-days"},
			text: `retention-days: "30d" is not a whole number`},
		{name: "no artifact store", inputs: map[string]string{"retention-days": "30", "backup-store": "path:/backups"}, want: []string{"retention-days"},
			text: "only the artifact store keeps backups for a number of days, and backup-store has no artifact"},
		{name: "artifact among the stores", inputs: map[string]string{"retention-days": "30", "backup-store": "path:/backups\nartifact"}, days: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := FromAction(envOf(actionEnv(tt.inputs)))
			err := c.Validate()
			if got := problemInputs(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("problems name %q, want %q; error:\n%v", got, tt.want, err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error does not contain %q:\n%v", tt.text, err)
			}
			if err == nil && c.RetentionDays != tt.days {
				t.Errorf("RetentionDays = %d, want %d", c.RetentionDays, tt.days)
			}
		})
	}

	// A flag of upgrade, plan and backup, not of restore.
	for _, cmd := range []string{CmdUpgrade, CmdPlan, CmdBackup} {
		if !slices.ContainsFunc(InputsFor(cmd), func(in Input) bool { return in.Name == "retention-days" }) {
			t.Errorf("%s has no --retention-days", cmd)
		}
	}
	if _, err := FromFlags(CmdRestore, []string{"--from=x", "--retention-days=3"}, envOf(nil)); err == nil {
		t.Error("restore accepts --retention-days")
	}
	c, err := FromFlags(CmdBackup, []string{"--db-host=db", "--db-name=k", "--db-user=k", "--backup-store=artifact", "--allow-plaintext-backup", "--retention-days=14"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.RetentionDays != 14 || !strings.Contains(c.String(), "retention-days=14") {
		t.Errorf("backup --retention-days=14: %v, RetentionDays %d, %s", err, c.RetentionDays, c)
	}
}

func TestValidateRunID(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--db-host=db", "--db-name=k", "--db-user=k"}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		want  []string
		text  string
		runID int64
		token string
	}{
		{name: "current run", args: []string{"--from=artifact:identity-r1"}},
		{name: "earlier run", args: []string{"--from=artifact:identity-r1", "--run-id=16000000001"}, env: map[string]string{"GITHUB_TOKEN": "ghs_env"},
			runID: 16000000001, token: "ghs_env"},
		{name: "bare artifact name", args: []string{"--from=identity-r1", "--run-id=7", "--github-token=ghs_flag"}, runID: 7, token: "ghs_flag"},
		{name: "the flag wins over GITHUB_TOKEN", args: []string{"--from=identity-r1", "--run-id=7", "--github-token=ghs_flag"},
			env: map[string]string{"GITHUB_TOKEN": "ghs_env"}, runID: 7, token: "ghs_flag"},
		{name: "no token", args: []string{"--from=artifact:identity-r1", "--run-id=7"}, want: []string{"github-token"},
			text: "github-token: required with run-id: a token that may read the repository's actions (actions: read)"},
		{name: "zero", args: []string{"--from=artifact:identity-r1", "--run-id=0", "--github-token=t"}, want: []string{"run-id"},
			text: "run-id: 0 is not a workflow run id"},
		{name: "not a number", args: []string{"--from=artifact:identity-r1", "--run-id=abc", "--github-token=t"}, want: []string{"run-id"},
			text: `run-id: "abc" is not a whole number`},
		{name: "an oci reference", args: []string{"--from=oci://ghcr.io/org/backups:b1", "--run-id=7", "--github-token=t"}, want: []string{"run-id"},
			text: `run-id: only used to restore an artifact of that run, and from "oci://ghcr.io/org/backups:b1" is not one`},
		{name: "a directory", args: []string{"--from=" + dir, "--run-id=7", "--github-token=t"}, want: []string{"run-id"}, text: "give from as artifact:<name>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromFlags(CmdRestore, append(slices.Clone(base), tt.args...), envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if got := problemInputs(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("problems name %q, want %q; error:\n%v", got, tt.want, err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error does not contain %q:\n%v", tt.text, err)
			}
			if err != nil {
				return
			}
			if c.RunID != tt.runID || c.GitHubToken != tt.token {
				t.Errorf("RunID %d, GitHubToken %q; want %d, %q", c.RunID, c.GitHubToken, tt.runID, tt.token)
			}
			if tt.token != "" && (!slices.Contains(c.Secrets(), tt.token) || strings.Contains(shownText(t, c), tt.token)) {
				t.Errorf("the token is not a secret: Secrets %q, shown %s", c.Secrets(), c)
			}
		})
	}

	// As an action (upgrade) the token is masked like every secret.
	c := FromAction(envOf(actionEnv(map[string]string{"github-token": "ghs_input"})))
	if !slices.Contains(c.Secrets(), "ghs_input") || strings.Contains(shownText(t, c), "ghs_input") {
		t.Errorf("github-token as an action input is not a secret: %s", c)
	}
}
