package config

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// fuzzSecret is the database and Keycloak admin password in every fuzzed configuration; the
// seeds also put it inside other inputs.
const fuzzSecret = "Zq9-fuzz-Secret-Pw7"

// FuzzValidate reads fuzzed action inputs and validates them: it must never panic, and the
// secret must never appear in the error, String or LogValue. Run with
// go test -fuzz=FuzzValidate ./internal/config; as a plain test it runs the seeds only.
func FuzzValidate(f *testing.F) {
	f.Add("identity", "alfresco/alfresco-identity-service", "10m", "", "image.tag=12", "a: 1", "5432")
	f.Add("identity", "oci://ghcr.io/org/identity:3.0.0", fuzzSecret, "postgres://k:"+fuzzSecret+"@db:5432/k", "", "", "")
	f.Fuzz(func(t *testing.T, release, chart, timeout, databaseURL, set, values, port string) {
		env := map[string]string{
			"INPUT_RELEASE-NAME":            release,
			"INPUT_CHART":                   chart,
			"INPUT_REPO-URL":                "https://charts.example.com",
			"INPUT_TIMEOUT":                 timeout,
			"INPUT_DATABASE-URL":            databaseURL,
			"INPUT_SET":                     set,
			"INPUT_VALUES":                  values,
			"INPUT_DB-PORT":                 port,
			"INPUT_DB-PASSWORD":             fuzzSecret,
			"INPUT_KEYCLOAK-ADMIN-PASSWORD": fuzzSecret,
		}
		c := FromAction(envOf(env))
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("configuration", "config", c)
		text := c.String() + "\n" + buf.String()
		if err := c.Validate(); err != nil {
			text += "\n" + err.Error()
		}
		if strings.Contains(text, fuzzSecret) {
			t.Fatalf("the secret is shown:\n%s", text)
		}
	})
}

// FuzzReferences validates fuzzed chart, backup-store and restore-from values: it must never panic,
// and every oci:// reference it accepts must parse as an OCI reference for the registry client
// that will use it (go-containerregistry's own parser is the oracle), so a run never fails on a
// reference the preflight let through.
func FuzzReferences(f *testing.F) {
	f.Add("oci://ghcr.io/org/identity", "oci://127.0.0.1:5000/backups/kc:r4", "oci://ghcr.io/org/b:kc-1@sha256:"+strings.Repeat("a", 64))
	f.Add("alfresco/alfresco-identity-service", "path:./backups", "artifact:identity-r1-20261126T101500Z")
	f.Add("oci://GHCR.io//x", "oci://h/Upper:tag", "oci://h/x@sha256:zz")
	f.Add("./chart;rm -rf /", "path:\x00", "artifact:a/b")
	f.Fuzz(func(t *testing.T, chart, store, from string) {
		for _, cmd := range []string{CmdUpgrade, CmdRestore} {
			env := map[string]string{
				"INPUT_COMMAND": cmd, "INPUT_RELEASE-NAME": "identity", "INPUT_CHART": chart, "INPUT_BACKUP-STORE": store,
				"INPUT_RESTORE-FROM": from, "INPUT_DATABASE-URL": "postgres://k@127.0.0.1/k", "INPUT_ALLOW-PLAINTEXT-BACKUP": "true",
			}
			c := FromAction(envOf(env))
			err := c.Validate()
			problems := map[string]bool{}
			for _, p := range Problems(err) {
				var in *InputError
				if errors.As(p, &in) {
					problems[in.Input] = true
				}
			}
			check := func(input, value string) {
				if problems[input] || !strings.HasPrefix(value, "oci://") {
					return
				}
				if _, perr := name.ParseReference(strings.TrimPrefix(value, "oci://"), name.WeakValidation); perr != nil {
					t.Errorf("%s %q passed validation but is not an OCI reference: %v", input, value, perr)
				}
			}
			if cmd == CmdUpgrade {
				check("chart", strings.TrimSpace(chart))
				for _, s := range c.BackupStores {
					check("backup-store", s)
				}
			} else {
				check("restore-from", strings.TrimSpace(from))
			}
		}
	})
}
