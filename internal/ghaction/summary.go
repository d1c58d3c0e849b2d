package ghaction

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/redact"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// joinAnd lists items as "a, b and c" (or "or").
func joinAnd(items []string, and string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + and + " " + items[len(items)-1]
}

// maxNote bounds the note of a timeline row; the full errors are in the sections above it.
const maxNote = 300

// Summary is the job summary of a run, as Markdown: a title with the result, a table of facts,
// for a run that needs a person the state things are in, the cause, the recovery errors and the
// failing container's last log lines, and the timeline.
// It depends on nothing but the report (times are offsets from Report.Started). Secrets are
// not replaced: Action.Summary does that.
func Summary(rep *rollout.Report) string { return summary(rep, nil) }

// summary renders the summary with the secrets replaced in every text before it is escaped.
func summary(rep *rollout.Report, secrets []string) string {
	red := func(s string) string { return redact.String(s, secrets) }
	var b strings.Builder

	fmt.Fprintf(&b, "## %s\n\n%s\n\n", heading(rep), paragraph(red(rep.Headline())))

	// Facts.
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	res := code(string(rep.Result)) + fmt.Sprintf(" (exit %d", rep.ExitCode())
	row("Result", res+")")
	if rep.Release != "" {
		rel := code(red(rep.Release))
		if rep.Namespace != "" {
			rel += " in namespace " + code(red(rep.Namespace))
		}
		row("Release", rel)
	}
	if r := revisions(rep); r != "" {
		row("Revisions", r)
	}
	if rep.FromChart != "" || rep.ToChart != "" {
		row("Chart", code(red(rep.FromChart))+" → "+code(red(rep.ToChart)))
	}
	if bk := rep.Backup; bk != nil {
		locs := bk.Locations
		if len(locs) == 0 && bk.Dir != "" {
			locs = []string{bk.Dir + " (working copy)"}
		}
		var cells []string
		for _, l := range locs {
			cells = append(cells, code(red(l)))
		}
		if len(cells) > 0 {
			row("Backup", strings.Join(cells, "<br>"))
		}
		if bk.SHA256 != "" {
			row("Backup SHA-256", code(red(bk.SHA256)))
		}
		if bk.Bytes > 0 {
			row("Backup size", fmt.Sprintf("%s (%d bytes)", humanBytes(bk.Bytes), bk.Bytes))
		}
		if bk.ArtifactID > 0 {
			artifact := fmt.Sprintf("id %d", bk.ArtifactID)
			if bk.ArtifactURL != "" {
				artifact = fmt.Sprintf("[id %d](%s)", bk.ArtifactID, red(bk.ArtifactURL))
			}
			row("Backup artifact", artifact)
		}
		switch {
		case len(bk.Locations) == 0:
		case bk.Encrypted:
			row("Backup encryption", "age, every file of the bundle")
		case len(bk.Secrets) > 0:
			row("Backup encryption", fmt.Sprintf("⚠️ none: the stored bundle holds %s, in plain text: whoever can read %s can read them (give backup-encryption-recipients)",
				cell(red(strings.Join(bk.Secrets, "; "))), joinAnd(cells, "or")))
		}
	}
	if c := rep.Customizations; c != nil {
		var lines []string
		for _, saved := range c.Saved {
			lines = append(lines, cell(red(saved.String())))
		}
		if len(lines) == 0 {
			lines = append(lines, "nothing found to save")
		}
		for _, w := range c.Warnings {
			lines = append(lines, "⚠️ not saved: "+cell(red(w)))
		}
		row("Customizations", strings.Join(lines, "<br>"))
	}
	if t := rep.Plan.Themes; t != nil && rep.ThemeCheck == nil {
		var lines []string
		for _, u := range t.Uses {
			lines = append(lines, cell(red(u.String())))
		}
		switch {
		case t.Skipped != "":
			lines = append(lines, "⏭ not known ("+cell(red(t.Skipped))+"): the theme check after the upgrade is skipped")
		case len(lines) == 0:
			lines = append(lines, "the realms name none")
		}
		row("Themes", strings.Join(lines, "<br>"))
	}
	if c := rep.ThemeCheck; c != nil {
		check := "✅ " + cell(red(c.String()))
		switch {
		case c.Skipped != "":
			check = "⏭ " + cell(red(c.String()))
		case len(c.Missing) > 0:
			check = "⚠️ " + cell(red(c.String()))
		}
		row("Theme check", check)
	}
	if db := database(rep); db != "" {
		row("Database", cell(red(db)))
	}
	if reh := rep.Rehearsal; reh != nil {
		row("Rehearsal", cell(red(reh.Summary())))
	}
	if rep.Downtime > 0 {
		row("Downtime", duration(rep.Downtime)+" (Keycloak down: backup, upgrade, readiness)")
	}
	row("Duration", duration(rep.Duration))

	// What the upgrade would do, for a plan: the changes, and what a person may not expect.
	if rep.DryRun {
		writePlan(&b, rep.Plan, red)
	}

	// What a person finds, and what went wrong.
	if state := rep.State(); len(state) > 0 {
		b.WriteString("\n### State now\n\n")
		for _, l := range state {
			fmt.Fprintf(&b, "- %s\n", paragraph(red(l)))
		}
	}
	if rep.Failure != nil {
		b.WriteString("\n### Cause\n\n")
		block(&b, red(rep.Failure.Error()))
	}
	if rep.Recovery != nil {
		b.WriteString("\n### Recovery did not complete\n\n")
		block(&b, red(rep.Recovery.Error()))
	}
	if reh := rep.Rehearsal; reh != nil && reh.Failure != nil {
		b.WriteString("\n### Rehearsal on a clone\n\n")
		block(&b, red(reh.Failure.Error()))
		if nr := reh.NotReady; nr != nil && len(nr.Logs) > 0 {
			fmt.Fprintf(&b, "\nLast log lines of %s on the clone:\n\n", code(red(nr.Pod+"/"+nr.Container)))
			fenced(&b, red(strings.Join(nr.Logs, "\n")), "text")
		}
	}
	if nr := rep.NotReady; nr != nil && len(nr.Logs) > 0 {
		who := nr.Pod
		if nr.Container != "" {
			who += "/" + nr.Container
		}
		if who == "" {
			who = nr.Resource
		}
		fmt.Fprintf(&b, "\n### Last log lines of %s\n\n", code(red(who)))
		if nr.Reason != "" {
			when := ""
			if nr.After > 0 {
				when = " after " + duration(nr.After) + " of waiting"
			}
			if nr.InWindow {
				when += ", during the stability window"
			}
			fmt.Fprintf(&b, "%s%s.\n\n", inline(red(nr.Reason)), when)
		}
		fenced(&b, red(strings.Join(nr.Logs, "\n")), "text")
	}

	// Timeline.
	if len(rep.Timeline) > 0 {
		b.WriteString("\n### Timeline\n\n| Step | Started | Duration | Result | Note |\n|---|---:|---:|---|---|\n")
		for _, s := range rep.Timeline {
			status, note := "✅ ok", s.Note
			switch {
			case s.Err != nil:
				status = "❌ failed"
				if note != "" {
					note += ": "
				}
				note += s.Err.Error()
			case strings.HasPrefix(s.Note, "skipped"):
				status = "⏭ skipped"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(red(s.Name)), offset(rep.Started, s.Start),
				duration(s.Duration), status, cell(truncate(red(note), maxNote)))
		}
	}
	return b.String()
}

// heading is the summary's title: the result at a glance.
func heading(rep *rollout.Report) string {
	switch rep.Result {
	case rollout.Upgraded:
		return "✅ identity upgraded"
	case rollout.Planned:
		return "📝 planned: nothing changed"
	case rollout.Rehearsed:
		return "🧪 rehearsal passed: nothing changed in production"
	case rollout.RehearsalFailed:
		return "🧪 rehearsal failed: nothing changed in production"
	case rollout.Noop:
		if rep.NothingToRecover {
			return "✅ nothing to recover"
		}
		return "✅ nothing to do"
	case rollout.RolledBack:
		return "↩️ identity rolled back"
	case rollout.BackedUp:
		return "✅ database backed up"
	case rollout.Restored:
		return "✅ database restored"
	case rollout.Incomplete:
		return "⚠️ incomplete"
	case rollout.Failed:
		return "❌ failed: nothing changed"
	case rollout.Refused:
		return "⏸ refused: nothing changed"
	default:
		return "❌ identity needs a person"
	}
}

// revisions tells the revisions: before → upgraded → now, and what the rollback returned to.
func revisions(rep *rollout.Report) string {
	if rep.PreviousRevision == 0 && rep.Revision == 0 && rep.UpgradedRevision == 0 {
		return ""
	}
	parts := []string{fmt.Sprintf("%d before", rep.PreviousRevision)}
	if rep.UpgradedRevision > 0 {
		parts = append(parts, fmt.Sprintf("%d upgraded", rep.UpgradedRevision))
	}
	now := fmt.Sprintf("%d now", rep.Revision)
	if rep.Result == rollout.RolledBack && rep.UpgradedRevision > 0 {
		now += fmt.Sprintf(" (rolled back to revision %d)", rep.PreviousRevision)
	}
	return strings.Join(append(parts, now), " → ")
}

// database says what happened to the database, when anything could have.
func database(rep *rollout.Report) string {
	switch {
	case rep.DatabaseRestored && rep.DatabaseDrift != "":
		return "restored from the backup: " + rep.DatabaseDrift
	case rep.DatabaseRestored:
		return "restored from the backup"
	case rep.DatabaseDrift != "":
		return "not restored: " + rep.DatabaseDrift
	case rep.UpgradedRevision > 0 && rep.ExitCode() != rollout.ExitOK:
		return "not restored"
	}
	return ""
}

// block writes a text: one line as a paragraph, several in a fenced block.
func block(b *strings.Builder, s string) {
	s = strings.TrimRight(s, "\n")
	if !strings.ContainsAny(s, "\r\n") {
		b.WriteString(paragraph(s) + "\n")
		return
	}
	fenced(b, s, "text")
}

// fenced writes s in a fenced code block whose fence no line of s can close.
func fenced(b *strings.Builder, s, lang string) {
	s = strings.ReplaceAll(strings.TrimRight(s, "\n"), "\r\n", "\n")
	fence := strings.Repeat("`", max(3, longestRun(s, '`')+1))
	fmt.Fprintf(b, "%s%s\n%s\n%s\n", fence, lang, s, fence)
}

// code is s as a code span in a table cell.
func code(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	ticks := strings.Repeat("`", longestRun(s, '`')+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return ticks + pad + strings.ReplaceAll(s, "|", `\|`) + pad + ticks
}

// cell is s as plain text in a table cell: Markdown escaped, lines joined with <br>.
func cell(s string) string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n")
	for i, l := range lines {
		lines[i] = inline(l)
	}
	return strings.Join(lines, "<br>")
}

// inlineEscaper escapes what Markdown (and the HTML it allows) would interpret in a line.
var inlineEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "|", `\|`, "~", `\~`, "&", "&amp;", "#", `\#`,
)

// inline is one line of plain text, escaped.
func inline(s string) string {
	return inlineEscaper.Replace(strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " "))
}

// paragraph is one line of plain text as a paragraph of its own: escaped, and kept from
// starting a list, a heading underline or a thematic break.
func paragraph(s string) string {
	s = inline(s)
	if s != "" && strings.ContainsRune("-+=", rune(s[0])) {
		return `\` + s
	}
	digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
	if digits > 0 && digits < len(s) && (s[digits] == '.' || s[digits] == ')') {
		return s[:digits] + `\` + s[digits:]
	}
	return s
}

func longestRun(s string, c byte) int {
	n, best := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// duration shows a duration the way a timeline reads best: ms below a second, then tenths.
func duration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// offset is when a step started, relative to the run's start ("+1.2s").
func offset(start, at time.Time) string {
	if at.IsZero() || start.IsZero() {
		return ""
	}
	d := at.Sub(start)
	if d < 0 {
		return "-" + duration(-d)
	}
	return "+" + duration(d)
}

// humanBytes is a size in binary units ("4.0 KiB").
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// writePlan writes a plan's resource changes and warnings.
func writePlan(b *strings.Builder, p rollout.Plan, red func(string) string) {
	if p.Target.ChartName == "" {
		return
	}
	if len(p.Changes) > 0 {
		fmt.Fprintf(b, "\n### Changes (%d)\n\n", len(p.Changes))
		for _, c := range p.Changes {
			line := fmt.Sprintf("%s %s", c.Action, code(red(c.Resource())))
			if len(c.Immutable) > 0 {
				line += " (immutable: " + red(strings.Join(c.Immutable, ", ")) + ")"
			}
			fmt.Fprintf(b, "- %s\n", line)
		}
	} else {
		b.WriteString("\n### Changes\n\nNo resource changes.\n")
	}
	if len(p.Warnings) > 0 {
		b.WriteString("\n### Warnings\n\n")
		for _, w := range p.Warnings {
			fmt.Fprintf(b, "- %s\n", paragraph(red(w)))
		}
	}
}
