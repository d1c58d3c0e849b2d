package config

import (
	"strconv"
	"strings"
	"time"
)

// A binding ties an input to its field of Config: the kind of text it takes, how that text is
// read into the field, and how the field is shown again. Every input of the table has one, so
// reading, showing, redacting and checking an input all start from its row.
type binding interface {
	kind() Kind
	// set reads text (the given value, else the environment fallback, else the default) into
	// c's field. A value it cannot read is recorded as a problem of c's, for Validate.
	set(c *Config, name, text string)
	// get shows the field: value for every kind but a list, list for a list.
	get(c *Config) (value string, list []string)
	// parses: set may record a problem that quotes the value. Such inputs are read after the
	// text ones, so that every secret is known before any value is quoted.
	parses() bool
}

// fieldOf is the common part of the bindings: the function that finds the field in a Config.
type fieldOf[T any] struct {
	at func(*Config) *T
}

// str binds a one-line text input to a string field.
func str(at func(*Config) *string) binding { return textBinding{fieldOf[string]{at}, KindString} }

// text binds a multi-line text input (YAML, a kubeconfig, an age identity) to a string field.
func text(at func(*Config) *string) binding { return textBinding{fieldOf[string]{at}, KindText} }

type textBinding struct {
	fieldOf[string]
	k Kind
}

func (b textBinding) kind() Kind                       { return b.k }
func (b textBinding) set(c *Config, _, s string)       { *b.at(c) = s }
func (b textBinding) get(c *Config) (string, []string) { return *b.at(c), nil }
func (textBinding) parses() bool                       { return false }

// choice binds an input with a fixed set of values to a field of a string type of its own
// (rollout.RollbackHooks, ...). Validate checks the value against the row's Enum.
func choice[T ~string](at func(*Config) *T) binding { return choiceBinding[T]{fieldOf[T]{at}} }

type choiceBinding[T ~string] struct{ fieldOf[T] }

func (choiceBinding[T]) kind() Kind                         { return KindString }
func (b choiceBinding[T]) set(c *Config, _, s string)       { *b.at(c) = T(s) }
func (b choiceBinding[T]) get(c *Config) (string, []string) { return string(*b.at(c)), nil }
func (choiceBinding[T]) parses() bool                       { return false }

// list binds a newline-separated list (on the CLI, a flag that may be repeated).
func list(at func(*Config) *[]string) binding { return listBinding{fieldOf[[]string]{at}} }

type listBinding struct{ fieldOf[[]string] }

func (listBinding) kind() Kind                         { return KindList }
func (b listBinding) set(c *Config, _, s string)       { *b.at(c) = splitLines(s) }
func (b listBinding) get(c *Config) (string, []string) { return "", *b.at(c) }
func (listBinding) parses() bool                       { return false }

// boolean binds a GitHub-style boolean: true/True/TRUE or false/False/FALSE.
func boolean(at func(*Config) *bool) binding { return boolBinding{fieldOf[bool]{at}} }

type boolBinding struct{ fieldOf[bool] }

func (boolBinding) kind() Kind { return KindBool }
func (b boolBinding) set(c *Config, name, s string) {
	switch s {
	case "true", "True", "TRUE":
		*b.at(c) = true
	case "false", "False", "FALSE":
		*b.at(c) = false
	default:
		c.problem(name, "%s is not a boolean; use true or false", c.quote(s))
	}
}
func (b boolBinding) get(c *Config) (string, []string) { return strconv.FormatBool(*b.at(c)), nil }
func (boolBinding) parses() bool                       { return true }

// number binds a whole number that must be given (it has a default).
func number(at func(*Config) *int) binding { return numberBinding[int]{fieldOf[int]{at}, false} }

// optional binds a whole number that may be left empty: the field is then 0, and shown empty.
func optional[T int | int64](at func(*Config) *T) binding {
	return numberBinding[T]{fieldOf[T]{at}, true}
}

type numberBinding[T int | int64] struct {
	fieldOf[T]
	optional bool
}

func (numberBinding[T]) kind() Kind { return KindInt }
func (b numberBinding[T]) set(c *Config, name, s string) {
	if s == "" && b.optional {
		*b.at(c) = 0
		return
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || int64(T(n)) != n {
		c.problem(name, "%s is not a whole number", c.quote(s))
		*b.at(c) = 0
		return
	}
	*b.at(c) = T(n)
}
func (b numberBinding[T]) get(c *Config) (string, []string) {
	n := *b.at(c)
	if b.optional && n == 0 {
		return "", nil
	}
	return strconv.FormatInt(int64(n), 10), nil
}
func (numberBinding[T]) parses() bool { return true }

// duration binds a Go duration such as 90s or 10m.
func duration(at func(*Config) *time.Duration) binding {
	return durationBinding{fieldOf[time.Duration]{at}}
}

type durationBinding struct{ fieldOf[time.Duration] }

func (durationBinding) kind() Kind { return KindDuration }
func (b durationBinding) set(c *Config, name, s string) {
	d, err := time.ParseDuration(s)
	if err != nil {
		c.problem(name, "%s is not a duration (examples: 90s, 10m)", c.quote(s))
		d = 0
	}
	*b.at(c) = d
}
func (b durationBinding) get(c *Config) (string, []string) { return b.at(c).String(), nil }
func (durationBinding) parses() bool                       { return true }

// splitLines splits a newline list, trimming each line and dropping blank ones.
func splitLines(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// enum lists the values of a choice, for an input's Enum.
func enum[T ~string](values ...T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}
