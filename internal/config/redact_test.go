package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

const secret = "Hunter2-S3cret-pw"

// shownText returns everything a run may show of a configuration: String, %v, the slog JSON and
// text output of LogValue, and the Validate error.
func shownText(t *testing.T, c *Config) string {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).InfoContext(t.Context(), "configuration", "config", c)
	slog.New(slog.NewTextHandler(&buf, nil)).InfoContext(t.Context(), "configuration", "config", c)
	text := c.String() + "\n" + fmt.Sprintf("%v %s", c, c) + "\n" + buf.String()
	if err := c.Validate(); err != nil {
		text += "\n" + err.Error()
	}
	return text
}

func TestRedaction(t *testing.T) {
	noDB := map[string]string{"db-host": "", "db-name": "", "db-user": "", "db-password": ""}
	merge := func(a map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range a {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		inputs map[string]string
		env    map[string]string
		shows  []string // also expected in String()
	}{
		{name: "db-password", inputs: merge(nil, "db-password", secret), shows: []string{"db-password=xxxxx"}},
		{name: "PGPASSWORD", inputs: merge(nil, "db-password", ""), env: map[string]string{"PGPASSWORD": secret}},
		{name: "password in database-url", inputs: merge(noDB, "database-url", "postgres://keycloak:"+secret+"@db:5432/keycloak"),
			shows: []string{"postgres://keycloak:xxxxx@db:5432/keycloak"}},
		{name: "password in DATABASE_URL", inputs: noDB, env: map[string]string{"DATABASE_URL": "postgresql://keycloak:" + secret + "@db/keycloak"},
			shows: []string{"postgresql://keycloak:xxxxx@db/keycloak"}},
		{name: "password in the query of database-url", inputs: merge(noDB, "database-url", "postgres://keycloak@db/keycloak?password="+secret)},
		{name: "password in an invalid database-url", inputs: merge(noDB, "database-url", "postgres://keycloak:"+secret+"@db:port/keycloak")},
		{name: "password in a database-url with a bad scheme", inputs: merge(noDB, "database-url", "mysql://keycloak:"+secret+"@db/keycloak")},
		{name: "keycloak-admin-password", inputs: merge(nil, "keycloak-admin-password", secret)},
		{name: "registry-password", inputs: merge(nil, "registry-password", secret)},
		{name: "backup-identity", inputs: merge(nil, "backup-identity", "AGE-SECRET-KEY-1"+secret)},
		{name: "bad backup-identity", inputs: merge(nil, "backup-identity", secret)},
		{name: "kubeconfig", inputs: merge(nil, "kubeconfig", "clusters: []\nusers:\n- user: {token: "+secret+"}\n")},
		{name: "bad kubeconfig", inputs: merge(nil, "kubeconfig", "token: ["+secret)},
		{name: "a line of the kubeconfig in another value", inputs: merge(nil, "kubeconfig", "clusters: []\nusers:\n- user: {token: "+secret+"}\n",
			"kube-context", "- user: {token: "+secret+"}")},
		{name: "password in userinfo of probe-url", inputs: merge(nil, "probe-url", "https://u:"+secret+"@id.example.com/")},
		{name: "password in a bad value", inputs: merge(nil, "db-password", secret, "timeout", secret, "release-name", "Bad_"+secret,
			"chart", "repo/"+secret+"/x", "backup-store", "s3://"+secret, "set", "x"+secret, "namespace", secret+"\n",
			"backup-encryption-recipients", "age1"+secret, "workload", secret, "values-files", secret)},
		{name: "password in a --set value", inputs: merge(nil, "db-password", secret, "set", "keycloak.password="+secret+"\nimage.tag=12")},
		{name: "secret-looking --set key", inputs: merge(nil, "set", "postgresql.postgresPassword="+secret), shows: []string{"postgresql.postgresPassword=xxxxx"}},
		{name: "password inside values", inputs: merge(nil, "db-password", secret, "values", "a: ["+secret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := actionEnv(tt.inputs)
			for k, v := range tt.env {
				env[k] = v
			}
			c := FromAction(envOf(env))
			if !slices.ContainsFunc(c.Secrets(), func(s string) bool { return strings.Contains(s, secret) }) &&
				!strings.Contains(tt.name, "--set key") {
				t.Fatalf("Secrets() = %q does not hold the secret", c.Secrets())
			}
			text := shownText(t, c)
			if strings.Contains(text, secret) {
				t.Errorf("the secret is shown:\n%s", text)
			}
			for _, s := range tt.shows {
				if !strings.Contains(c.String(), s) {
					t.Errorf("String() does not show %q:\n%s", s, c)
				}
			}
		})
	}
}

func TestRedactionInFlagErrors(t *testing.T) {
	_, err := FromFlags(CmdUpgrade, []string{"--db-password", secret, secret}, envOf(nil))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("err = %v; want an error that does not show the secret", err)
	}
}

func TestSecrets(t *testing.T) {
	c := FromAction(envOf(actionEnv(map[string]string{
		"db-password":             "p1",
		"keycloak-admin-password": "p2",
		"registry-password":       "p3",
		"registry-username":       "u",
		"backup-identity":         "AGE-SECRET-KEY-1P4",
		"kubeconfig":              "clusters: []",
		"keycloak-url":            "https://admin:p5@id.example.com/auth",
	})))
	// One-line secrets in table order, passwords in URLs, then the multi-line ones.
	want := []string{"p1", "p3", "p2", "p5", "clusters: []", "AGE-SECRET-KEY-1P4"}
	if got := c.Secrets(); !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q, want %q", got, want)
	}
	if got := FromAction(envOf(nil)).Secrets(); len(got) != 0 {
		t.Errorf("Secrets() of an empty config = %q, want none", got)
	}
}

func TestStringShowsValues(t *testing.T) {
	c := FromAction(envOf(actionEnv(map[string]string{"values": "a: 1\n", "set": "image.tag=12.0.4"})))
	s := c.String()
	for _, want := range []string{"upgrade (action)", "release-name=identity", "timeout=10m0s", "backup-store=[artifact]",
		`set=["image.tag=12.0.4"]`, `values="(4 bytes of YAML)"`, "db-password=xxxxx"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
}
