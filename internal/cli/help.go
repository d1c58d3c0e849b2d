package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
)

// command describes a subcommand for the help text.
type command struct {
	name     string
	summary  string // one line, for the list of subcommands
	about    string // what it does
	requires string // which inputs it needs
}

func commands() []command {
	const database = "the database: --database-url (or DATABASE_URL), or --db-host, --db-name and --db-user (password from --db-password or PGPASSWORD)"
	return []command{
		{
			name:    config.CmdUpgrade,
			summary: "back up the database, upgrade the release, check it, roll back on failure",
			about: "Upgrades a Helm release of the identity service (Keycloak on PostgreSQL) safely: preflight checks, " +
				"quiesce Keycloak, back up the database (and the release's values and manifest) to the backup stores, " +
				"upgrade, wait until every resource is ready and stays ready, and on any failure roll back the release " +
				"and restore the database. This is what the GitHub Action runs.",
			requires: "--release-name, --chart, and " + database + ". An artifact or oci:// backup store also needs " +
				"--backup-encryption-recipients, or --allow-plaintext-backup.",
		},
		{
			name:     config.CmdPlan,
			summary:  "run the preflight checks and show the manifest diff; change nothing",
			about:    "Does what upgrade would check first (cluster, release, database, versions) and shows the manifest diff of the upgrade. It changes nothing: no quiesce, no backup, no upgrade.",
			requires: "the same as upgrade: --release-name, --chart, and " + database + ".",
		},
		{
			name:    config.CmdBackup,
			summary: "back up the database into a bundle in the backup stores",
			about: "Dumps the database with pg_dump into a bundle (dump plus manifest.json with checksums), encrypts it " +
				"to the age recipients if given, and stores it in every backup store. The last line on stdout is the " +
				"bundle's location. Keycloak keeps running; the dump is consistent.",
			requires: database + ". --release-name is optional: it names the bundle and records the release's values " +
				"and manifest in it. --keycloak-home DIR also saves a ZIP installation's customizations into the bundle.",
		},
		{
			name:    config.CmdRestore,
			summary: "restore the database from a bundle",
			about: "Checks a bundle against its manifest (refusing one that does not match) and restores it into the " +
				"database, replacing its content. Stop Keycloak first (scale its workload to 0).",
			requires: "--from and " + database + ". An encrypted bundle also needs --backup-identity; an oci:// bundle " +
				"may need --registry-username and --registry-password. --customizations-to DIR writes the bundle's " +
				"customizations out (first; without a database input, only that).",
		},
		{
			name:    config.CmdInspect,
			summary: "say what a bundle holds, from its manifest",
			about: "Reads a bundle's manifest and says what it holds: the database dumped and how, its files with their " +
				"checksums, whether they are encrypted, and its customizations by kind and name (never their content). " +
				"It needs no key and changes nothing.",
			requires: "--from; an oci:// bundle may need --registry-username and --registry-password.",
		},
		{
			name:    config.CmdRehearse,
			summary: "try the upgrade on a clone in a scratch namespace, production untouched",
			about: "Tries the upgrade before any downtime: backs up the database without stopping Keycloak, installs " +
				"the target chart under the release's name in a scratch namespace of the same cluster (the release's " +
				"values, no ingress, fresh claims, Keycloak held at 0), restores the backup into the clone's database, " +
				"starts Keycloak there, which migrates it, checks readiness and every realm's OIDC discovery, reports how " +
				"long the migration took and how many changesets it applied, and deletes everything it made. Exit 0 when " +
				"it passed, 1 when it failed (the clone is gone either way). upgrade --rehearse-first does the same first.",
			requires: "--release-name, --chart, and " + database + "; the database reached with --db-port-forward (the " +
				"clone's is its own bundled PostgreSQL), or --rehearsal-database-url (an empty scratch database).",
		},
		{
			name:    config.CmdRecover,
			summary: "complete the recovery of a run that was cancelled or killed",
			about: "Reads the release's run journal. If a run stopped before it finished (cancelled, killed, its runner " +
				"lost), puts back what it changed, with that run's own backup and recorded revision: the database when " +
				"it changed, the release, Keycloak's replicas. Changes nothing when no run was interrupted (exit 0); " +
				"exit 1 when it recovered one. The step for `if: cancelled()` or `if: failure()`.",
			requires: "--release-name and " + database + "; the backup stores the run used (--backup-store) when it " +
				"ran on another machine, and --backup-identity for an encrypted one.",
		},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func writeHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString("identity-upgrade upgrades a Helm release of the Alfresco Identity Service (Keycloak on PostgreSQL)\n")
	b.WriteString("safely: database backup first, hard readiness checks, and rollback of release and database on failure.\n\n")
	b.WriteString("Usage: identity-upgrade <subcommand> [flags]\n\nSubcommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-8s %s\n", "version", "print the version")
	b.WriteString("\nRun 'identity-upgrade <subcommand> --help' for its flags.\n\n")
	b.WriteString("As a GitHub Action (GITHUB_ACTIONS=true and no arguments) it runs the subcommand the input\n")
	b.WriteString("command names (default upgrade) and reads each input from INPUT_<NAME> (e.g. INPUT_RELEASE-NAME);\n")
	b.WriteString("every flag --<name> is the input <name>, but restore's --from, which is the input restore-from.\n\n")
	b.WriteString(exitCodesHelp)
	io.WriteString(w, b.String())
}

const exitCodesHelp = `Exit codes (and the action's result output):
  0  upgraded, or nothing to do (upgraded, noop)
  1  failed; release and database were rolled back cleanly (rolled-back)
  2  invalid input, or refused before anything was changed; nothing was changed (refused)
  3  failed and could not restore; needs a person: the report says what state everything is in
     (needs-attention)
`

func writeCommandHelp(w io.Writer, c command) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: identity-upgrade %s [flags]\n\n", c.name)
	b.WriteString(wrap(c.about, 0, 100) + "\n\n")
	b.WriteString(wrap("Requires "+c.requires, 0, 100) + "\n\n")
	b.WriteString("Boolean flags: --name or --name=false. List flags: repeat the flag, or put one item per line.\n")

	inputs := config.InputsFor(c.name)
	for _, group := range config.Groups() {
		var in []config.Input
		for _, i := range inputs {
			if i.Group == group {
				in = append(in, i)
			}
		}
		if len(in) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", group)
		for _, i := range in {
			writeFlag(&b, i)
		}
	}
	b.WriteString("\n" + exitCodesHelp)
	io.WriteString(w, b.String())
}

func writeFlag(b *strings.Builder, in config.Input) {
	placeholder := in.Kind().String()
	if in.Enum != nil {
		placeholder = strings.Join(in.Enum, "|")
	}
	fmt.Fprintf(b, "  --%s %s\n", in.Name, placeholder)
	// The description already says whether it is secret and which env var it falls back to.
	text := in.Description
	if d := in.DefaultFor(false); d != "" {
		text += " (default: " + d + ")"
	}
	b.WriteString(wrap(text, 6, 100) + "\n")
}

// wrap breaks text into lines of at most width columns, each indented by indent spaces.
func wrap(text string, indent, width int) string {
	pad := strings.Repeat(" ", indent)
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && indent+len(line)+1+len(word) > width {
			lines = append(lines, pad+line)
			line = ""
		}
		if line == "" {
			line = word
		} else {
			line += " " + word
		}
	}
	if line != "" {
		lines = append(lines, pad+line)
	}
	return strings.Join(lines, "\n")
}
