// Package redact replaces secret values in text that is shown or written: configuration
// dumps and flag errors, step outputs, the job summary and annotations.
package redact

import (
	"slices"
	"strings"
)

// Mark replaces a secret. (Not GitHub's "***": that is emphasis in Markdown.)
const Mark = "xxxxx"

// minLinePart is the shortest line of a multi-line secret that is masked or replaced on its
// own: shorter lines ("-", "}", "EOF") are not secret and would mask half the log.
const minLinePart = 4

// String replaces every secret in s with Mark: each non-empty secret whole, and each line
// (spaces trimmed, at least minLinePart bytes) of a multi-line secret, longest first, in one
// pass.
func String(s string, secrets []string) string {
	var parts []string
	for _, secret := range secrets {
		for _, p := range Values(secret) {
			if !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
	}
	if len(parts) == 0 {
		return s
	}
	slices.SortStableFunc(parts, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(parts))
	for _, p := range parts {
		pairs = append(pairs, p, Mark)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// Values returns what to hide of one secret: the secret itself and, when it has several
// lines, each line trimmed of spaces that is at least minLinePart long (a log that shows a
// line of a kubeconfig shows a secret).
func Values(secret string) []string {
	if secret == "" {
		return nil
	}
	out := []string{secret}
	if !strings.ContainsAny(secret, "\r\n") {
		return out
	}
	for line := range strings.Lines(secret) {
		line = strings.TrimSpace(line)
		if len(line) >= minLinePart && !slices.Contains(out, line) {
			out = append(out, line)
		}
	}
	return out
}
