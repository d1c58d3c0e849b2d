package redact_test

import (
	"slices"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/redact"
)

func TestString(t *testing.T) {
	tests := []struct {
		name, s string
		secrets []string
		want    string
	}{
		{"none", "password=pw", nil, "password=pw"},
		{"empty secret ignored", "abc", []string{""}, "abc"},
		{"every occurrence", "pw and pw", []string{"pw"}, "xxxxx and xxxxx"},
		{"longest first", "p@ss and p@ssword", []string{"p@ss", "p@ssword"}, "xxxxx and xxxxx"},
		{"url-like", "postgres://keycloak:S3cr3t!@db/keycloak", []string{"S3cr3t!"}, "postgres://keycloak:xxxxx@db/keycloak"},
		{"multi-line whole", "key:\nAGE-SECRET-KEY-1ABC\nend", []string{"key:\nAGE-SECRET-KEY-1ABC\nend"}, "xxxxx"},
		{"line of a multi-line secret", "failed near '  token: abcdef0123'", []string{"kind: Config\n  token: abcdef0123\n-\n"},
			"failed near '  xxxxx'"},
		{"short lines of a multi-line secret are kept", "- a }", []string{"{\n- a\n}"}, "- a }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.String(tt.s, tt.secrets); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.s, got, tt.want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		secret string
		want   []string
	}{
		{"", nil},
		{"pw", []string{"pw"}},
		{"kind: Config\r\n  token: abcdef0123\n-\ntoken: abcdef0123\n", []string{"kind: Config\r\n  token: abcdef0123\n-\ntoken: abcdef0123\n", "kind: Config", "token: abcdef0123"}},
	}
	for _, tt := range tests {
		if got := redact.Values(tt.secret); !slices.Equal(got, tt.want) {
			t.Errorf("Values(%q) = %q, want %q", tt.secret, got, tt.want)
		}
	}
}
