// Package ghaction is the GitHub Actions side of a run: secret masks, log groups, step outputs,
// the job summary and the error annotation. It is the only importer of go-githubactions.
//
// Everything it writes for the world to keep (outputs, summary, annotations) has the secrets
// given to Mask replaced: GitHub masks them only in the log it displays, not in outputs that
// later steps read or in a summary a person copies.
package ghaction

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sethvargo/go-githubactions"

	"github.com/identity-upgrade/identity-upgrade/internal/redact"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// title is the title of the annotations the action writes.
const title = "identity-upgrade"

// heredocDelimiter is the fixed delimiter go-githubactions writes multi-line outputs with
// (name<<DELIM, value, DELIM); a value holding it would end the value early.
const heredocDelimiter = "_GitHubActionsFileCommandDelimeter_"

// maxAnnotation bounds the annotation message (GitHub truncates long ones anyway).
const maxAnnotation = 4000

// Action writes workflow commands to out and file commands to the files named by the
// GITHUB_* variables getenv returns.
type Action struct {
	a      *githubactions.Action
	getenv func(string) string

	mu      sync.Mutex
	secrets []string
}

// New returns an Action reading the environment through getenv and writing workflow commands
// to out (the step's stdout).
func New(getenv func(string) string, out io.Writer) *Action {
	return &Action{
		a:      githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(out)),
		getenv: getenv,
	}
}

// Mask registers every non-empty secret with GitHub (::add-mask::), and each line of a
// multi-line secret as well, since GitHub masks the log line by line. Call it before anything
// else is logged. The secrets are also replaced in what Outputs, Summary and Error write.
func (a *Action) Mask(secrets ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range secrets {
		if s == "" || slices.Contains(a.secrets, s) {
			continue
		}
		a.secrets = append(a.secrets, s)
		for _, m := range redact.Values(s) {
			_ = safely(func() { a.a.AddMask(m) })
		}
	}
}

// Group starts a collapsible log group; the returned function ends it (once, however often
// it is called).
func (a *Action) Group(name string) func() {
	_ = safely(func() { a.a.Group(a.redact(name)) })
	var once sync.Once
	return func() { once.Do(func() { _ = safely(a.a.EndGroup) }) }
}

// Outputs writes every output of action.yml to $GITHUB_OUTPUT; outside GitHub Actions (no
// GITHUB_OUTPUT) it does nothing.
func (a *Action) Outputs(rep *rollout.Report) error {
	if a.getenv("GITHUB_OUTPUT") == "" {
		return nil
	}
	for _, kv := range outputs(rep, a.secretList()) {
		if err := safely(func() { a.a.SetOutput(kv[0], kv[1]) }); err != nil {
			return fmt.Errorf("write output %s: %w", kv[0], err)
		}
	}
	return nil
}

// Summary appends the run's Markdown summary to $GITHUB_STEP_SUMMARY; outside GitHub Actions
// (no GITHUB_STEP_SUMMARY) it does nothing.
func (a *Action) Summary(rep *rollout.Report) error {
	if a.getenv("GITHUB_STEP_SUMMARY") == "" {
		return nil
	}
	secrets := a.secretList()
	md := redact.String(summary(rep, secrets), secrets)
	if err := safely(func() { a.a.AddStepSummary(md) }); err != nil {
		return fmt.Errorf("write the job summary: %w", err)
	}
	return nil
}

// Error annotates the run: ::error with the headline and the cause when it failed (exit code
// not 0), ::notice with the headline when it succeeded.
func (a *Action) Error(rep *rollout.Report) {
	secrets := a.secretList()
	msg := rep.Headline()
	if rep.ExitCode() != rollout.ExitOK {
		if rep.Failure != nil {
			msg += "\nCause: " + rep.Failure.Error()
		}
		if rep.Recovery != nil {
			msg += "\nRecovery did not complete: " + rep.Recovery.Error()
		}
	}
	msg = truncate(redact.String(msg, secrets), maxAnnotation)
	w := a.a.WithFieldsMap(map[string]string{"title": title})
	if rep.ExitCode() != rollout.ExitOK {
		_ = safely(func() { w.Errorf("%s", msg) })
		return
	}
	_ = safely(func() { w.Noticef("%s", msg) })
}

func (a *Action) secretList() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.secrets)
}

func (a *Action) redact(s string) string { return redact.String(s, a.secretList()) }

// outputs returns the outputs of action.yml, in its order, secrets replaced.
func outputs(rep *rollout.Report, secrets []string) [][2]string {
	rev := func(n int) string {
		if n <= 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	var location, sum, size, artifactID, artifactURL string
	if b := rep.Backup; b != nil {
		location = strings.Join(b.Locations, "\n")
		sum = b.SHA256
		if b.Bytes > 0 {
			size = strconv.FormatInt(b.Bytes, 10)
		}
		if b.ArtifactID > 0 {
			artifactID, artifactURL = strconv.FormatInt(b.ArtifactID, 10), b.ArtifactURL
		}
	}
	var reason string
	switch {
	case rep.Failure != nil:
		reason = rep.Failure.Error()
	case rep.ExitCode() != rollout.ExitOK && rep.Err() != nil:
		reason = rep.Err().Error()
	}
	out := [][2]string{
		{"result", string(rep.Result)},
		{"exit-code", strconv.Itoa(rep.ExitCode())},
		{"previous-revision", rev(rep.PreviousRevision)},
		{"revision", rev(rep.Revision)},
		{"backup-location", location},
		{"backup-sha256", sum},
		{"backup-bytes", size},
		{"artifact-id", artifactID},
		{"artifact-url", artifactURL},
		{"failure-reason", reason},
		{"duration-seconds", strconv.FormatInt(int64(math.Round(rep.Duration.Seconds())), 10)},
	}
	var rehearsal, migration string
	if reh := rep.Rehearsal; reh != nil {
		rehearsal = "failed"
		if reh.Passed {
			rehearsal = "passed"
		}
		if reh.Migration > 0 {
			migration = strconv.FormatInt(int64(math.Round(reh.Migration.Seconds())), 10)
		}
	}
	out = append(out, [2]string{"rehearsal-result", rehearsal}, [2]string{"rehearsal-migration-seconds", migration})
	for i := range out {
		out[i][1] = safeOutputValue(redact.String(out[i][1], secrets))
	}
	return out
}

// safeOutputValue keeps a value from ending the heredoc go-githubactions writes it in.
func safeOutputValue(v string) string {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, heredocDelimiter, "_GitHubActionsFileCommandDelimiter_")
}

// safely runs f, turning the panic go-githubactions raises on a failed write into an error.
func safely(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
				return
			}
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
