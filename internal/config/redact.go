package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/identity-upgrade/identity-upgrade/internal/redact"
)

// redacted replaces a secret wherever a configuration is shown.
const redacted = redact.Mark

// Secrets returns the non-empty secret values (the inputs marked secret, passwords inside
// URLs), each once, so that they can be masked in logs: one-line secrets first, in table order,
// then the multi-line ones (the kubeconfig, the age identity), returned whole.
func (c *Config) Secrets() []string {
	var out, multi []string
	add := func(to *[]string, s string) {
		if s != "" && !slices.Contains(out, s) && !slices.Contains(multi, s) {
			*to = append(*to, s)
		}
	}
	for _, in := range allInputs() {
		value, _ := in.Bind.get(c)
		switch {
		case in.Name == "database-url" && value != "":
			if _, err := url.Parse(value); err != nil {
				add(&out, value) // cannot find the password in it: all of it is secret
			} else {
				add(&out, urlPassword(value))
			}
		case in.Secret && in.Kind() == KindText:
			add(&multi, value)
		case in.Secret:
			add(&out, value)
		}
	}
	for _, in := range allInputs() {
		if value, _ := in.Bind.get(c); !in.Secret && in.Kind() == KindString && strings.Contains(value, "://") {
			add(&out, urlPassword(value))
		}
	}
	return append(out, multi...)
}

// containsSecret reports whether s contains any secret value.
func (c *Config) containsSecret(s string) bool {
	for _, secret := range c.Secrets() {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

// scrub replaces every secret value in s, and every line of a multi-line secret, in one
// pass, longest first.
func (c *Config) scrub(s string) string { return redact.String(s, c.Secrets()) }

// quote shows a user-given value in a message: quoted, shortened, and not at all if it contains
// a secret.
func (c *Config) quote(s string) string {
	if c.containsSecret(s) {
		return "(value not shown: it contains a secret)"
	}
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// field is one input as String and LogValue show it.
type field struct {
	name  string
	value string   // for every kind but KindList
	list  []string // for KindList
}

// fields lists every input of the run's mode (action or CLI) with its value, in table order.
// Values are not redacted yet.
func (c *Config) fields() []field {
	var out []field
	for _, in := range allInputs() {
		if (in.CLIOnly && c.Action) || (in.ActionOnly && !c.Action && in.Name != "command") {
			continue
		}
		value, list := in.Bind.get(c)
		out = append(out, field{name: in.Name, value: value, list: list})
	}
	return out
}

// sensitiveKey matches --set keys whose values are not shown.
var sensitiveKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|credential|private|key$)`)

// shown returns the non-empty inputs with their values as they may be shown: secrets replaced,
// passwords in URLs replaced, inline YAML as a size, secret-looking --set values replaced, and
// any secret value that appears inside another value replaced.
func (c *Config) shown() []field {
	var out []field
	for _, f := range c.fields() {
		if f.value == "" && len(f.list) == 0 {
			continue
		}
		in, _ := lookup(f.name)
		switch {
		case f.name == "database-url" || in.Kind() == KindString && strings.Contains(f.value, "://"):
			f.value = redactURL(f.value)
		case in.Secret:
			f.value = redacted
		case f.name == "values":
			f.value = fmt.Sprintf("(%d bytes of YAML)", len(f.value))
		case f.name == "set":
			f.list = slices.Clone(f.list)
			for i, kv := range f.list {
				if k, _, ok := strings.Cut(kv, "="); ok && sensitiveKey.MatchString(k) {
					f.list[i] = k + "=" + redacted
				}
			}
		}
		f.value = c.scrub(f.value)
		for i := range f.list {
			f.list[i] = c.scrub(f.list[i])
		}
		out = append(out, f)
	}
	return out
}

// redactURL replaces the password in a URL (userinfo or password query parameter); a URL that
// does not parse is hidden whole.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redacted)
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// String shows the configuration on one line with every secret redacted.
func (c *Config) String() string {
	var b strings.Builder
	b.WriteString(c.Command)
	if c.Action {
		b.WriteString(" (action)")
	}
	for _, f := range c.shown() {
		b.WriteString(" " + f.name + "=")
		if f.list != nil {
			b.WriteString("[")
			for i, s := range f.list {
				if i > 0 {
					b.WriteString(" ")
				}
				b.WriteString(quoteIfNeeded(s))
			}
			b.WriteString("]")
			continue
		}
		b.WriteString(quoteIfNeeded(f.value))
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=[]") || strconv.Quote(s) != `"`+s+`"` {
		return strconv.Quote(s)
	}
	return s
}

// LogValue implements slog.LogValuer: the configuration as a group, every secret redacted.
func (c *Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("command", c.Command), slog.Bool("action", c.Action)}
	for _, f := range c.shown() {
		if f.list != nil {
			attrs = append(attrs, slog.Any(f.name, f.list))
			continue
		}
		attrs = append(attrs, slog.String(f.name, f.value))
	}
	return slog.GroupValue(attrs...)
}
