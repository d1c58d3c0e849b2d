package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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
