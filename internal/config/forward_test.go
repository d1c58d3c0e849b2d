package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidatePortForward(t *testing.T) {
	// The forward stands for db-host: the valid base has db-host removed.
	forward := func(kv ...string) map[string]string {
		m := map[string]string{"db-host": ""}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		inputs map[string]string
		want   []string
		text   string
	}{
		{name: "auto", inputs: forward("db-port-forward", "auto")},
		{name: "service", inputs: forward("db-port-forward", "service/identity-postgresql-id")},
		{name: "service port", inputs: forward("db-port-forward", "service/identity-postgresql-id:5432")},
		{name: "pod port name", inputs: forward("db-port-forward", "pod/identity-postgresql-id-0:postgresql")},
		{name: "without it db-host is required", inputs: forward(), want: []string{"db-host"}},
		{name: "bad kind", inputs: forward("db-port-forward", "statefulset/identity-postgresql-id"), want: []string{"db-port-forward"},
			text: `db-port-forward: "statefulset/identity-postgresql-id" is not auto, service/NAME[:PORT] or pod/NAME[:PORT]`},
		{name: "bad port", inputs: forward("db-port-forward", "pod/db-0:70000"), want: []string{"db-port-forward"}},
		{name: "upper case", inputs: forward("db-port-forward", "pod/DB-0"), want: []string{"db-port-forward"}},
		{name: "with db-host", inputs: map[string]string{"db-port-forward": "auto"}, want: []string{"db-port-forward"},
			text: "db-port-forward: given together with db-host; the port-forward is the database's host and port (127.0.0.1 and a free port): remove db-host"},
		{name: "with db-port", inputs: forward("db-port-forward", "auto", "db-port", "5433"), want: []string{"db-port-forward"}, text: "remove db-port"},
		// The runner passes every default: db-port 5432 is there in every step, given or not.
		{name: "with db-port at its default", inputs: forward("db-port-forward", "auto", "db-port", "5432")},
		{name: "with database-url", inputs: forward("db-port-forward", "auto", "db-name", "", "db-user", "", "db-password", "",
			"database-url", "postgres://keycloak@db/keycloak"), want: []string{"db-port-forward"}, text: "remove database-url"},
		{name: "password from a Secret", inputs: forward("db-port-forward", "auto", "db-password", "",
			"db-password-from", "secret/identity-postgresql-id:postgresql-password")},
		{name: "password from a Secret, no forward", inputs: map[string]string{"db-password": "", "db-password-from": "secret/db:DB_PASSWORD"}},
		{name: "password twice", inputs: forward("db-port-forward", "auto", "db-password-from", "secret/db:password"), want: []string{"db-password-from"},
			text: "give the password in one place"},
		{name: "password-from bad", inputs: map[string]string{"db-password": "", "db-password-from": "identity-postgresql-id:postgresql-password"},
			want: []string{"db-password-from"}, text: "is not secret/NAME:KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := FromAction(envOf(actionEnv(tt.inputs))).Validate()
			if got := problemInputs(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("problems name %q, want %q; error:\n%v", got, tt.want, err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error does not contain %q:\n%v", tt.text, err)
			}
		})
	}
}

func TestPortForwardSubcommands(t *testing.T) {
	for _, cmd := range []string{CmdUpgrade, CmdPlan, CmdBackup, CmdRestore} {
		args := []string{"--db-port-forward=service/identity-postgresql-id", "--db-password-from=secret/identity-postgresql-id:postgresql-password",
			"--db-name=alfresco", "--db-user=keycloak", "--namespace=identity", "--release-name=identity", "--db-sslmode=disable"}
		switch cmd {
		case CmdUpgrade, CmdPlan:
			args = append(args, "--chart=./x.tgz")
		case CmdRestore:
			args = append(args, "--from=oci://ghcr.io/org/backups:b1")
		}
		c, err := FromFlags(cmd, args, envOf(map[string]string{"PGPASSWORD": "from-env", "DATABASE_URL": "postgres://other@db/other"}))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if c.DBPortForward != "service/identity-postgresql-id" || c.DBPasswordFrom != "secret/identity-postgresql-id:postgresql-password" {
			t.Errorf("%s: read %+v", cmd, c)
		}
		if c.DBPassword != "" || c.DatabaseURL != "" {
			t.Errorf("%s: PGPASSWORD or DATABASE_URL was used although the inputs name the database and its password", cmd)
		}
		if problems := problemInputs(t, c.Validate()); slices.Contains(problems, "db-host") || slices.Contains(problems, "db-port-forward") || slices.Contains(problems, "db-password-from") {
			t.Errorf("%s: %v", cmd, problems)
		}

		c.UseForward("127.0.0.1", 40123)
		c.UseClusterPassword("pw from the cluster")
		if got := c.DatabaseConnString(); got != "postgres://keycloak:pw%20from%20the%20cluster@127.0.0.1:40123/alfresco?sslmode=disable" {
			t.Errorf("%s: connection string %s", cmd, got)
		}
		if !slices.Contains(c.Secrets(), "pw from the cluster") || strings.Contains(c.String(), "pw from the cluster") {
			t.Errorf("%s: the password read from the cluster is not a secret: %s", cmd, c.String())
		}
	}
	// auto needs the release, which restore and backup do not require otherwise.
	c, err := FromFlags(CmdBackup, []string{"--db-port-forward=auto", "--db-name=alfresco", "--db-user=keycloak"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "auto finds the database in the release: give release-name") {
		t.Errorf("auto without release-name: %v", err)
	}
}
