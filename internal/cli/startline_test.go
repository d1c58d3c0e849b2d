package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// startLine is the first log line of a run with these flags, without its time.
func startLine(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	cfg, err := config.FromFlags(cmd, args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", startAttrs(cfg)...)
	_, line, _ := strings.Cut(strings.TrimSpace(buf.String()), " ")
	return line
}

func TestStartLine(t *testing.T) {
	tests := []struct {
		name, cmd string
		args      []string
		want      string
	}{
		{"upgrade through a port-forward", "upgrade", []string{
			"--release-name=identity", "--namespace=alfresco", "--chart=alfresco/alfresco-identity-service",
			"--chart-version=8.0.0", "--db-port-forward=service/identity-postgresql:5432", "--db-name=keycloak",
			"--db-password=s3cret", "--backup-store=path:/backups", "--backup-store=oci://ghcr.io/acme/backups",
			"--keycloak-admin-password=kc-s3cret", "--set=keycloak.password=x", "--dry-run=true",
		}, `level=INFO msg=starting command=upgrade release=identity namespace=alfresco chart=alfresco/alfresco-identity-service version=8.0.0 database=keycloak port-forward=service/identity-postgresql:5432 stores=path:/backups,oci://ghcr.io/acme/backups dry-run=true`},
		{"backup of a database URL", "backup", []string{
			"--release-name=identity", "--database-url=postgres://keycloak:s3cret@db.example:5432/keycloak?sslmode=require",
			"--backup-store=artifact",
		}, `level=INFO msg=starting command=backup release=identity namespace=default database=db.example:5432/keycloak stores=artifact`},
		{"restore from a registry", "restore", []string{
			"--release-name=identity", "--db-host=10.0.0.7", "--db-port=5433", "--db-name=keycloak",
			"--from=oci://registry.example/backups:identity-r3",
		}, `level=INFO msg=starting command=restore release=identity namespace=default database=10.0.0.7:5433/keycloak from=oci://registry.example/backups:identity-r3`},
		{"plan with a chart URL holding credentials", "plan", []string{
			"--release-name=identity", "--chart=https://bot:token123@charts.example/identity-8.0.0.tgz", "--db-host=db",
		}, `level=INFO msg=starting command=plan release=identity namespace=default chart=https://charts.example/identity-8.0.0.tgz database=db:5432`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := startLine(t, tt.cmd, tt.args...)
			if got != tt.want {
				t.Errorf("start line\n got %s\nwant %s", got, tt.want)
			}
			for _, secret := range []string{"s3cret", "token123", "keycloak.password"} {
				if strings.Contains(got, secret) {
					t.Errorf("the start line shows %q", secret)
				}
			}
		})
	}
}

// TestFirstLogLineIsShort: the first line a run logs is the short one; the configuration is
// not logged at Info.
func TestFirstLogLineIsShort(t *testing.T) {
	r := runCLI(t, nil, "backup", "--database-url=postgres://keycloak:s3cret@127.0.0.1:1/keycloak",
		"--backup-store=path:"+t.TempDir(), "--allow-plaintext-backup=true", "--db-attempts=1")
	if r.code == rollout.ExitOK {
		t.Fatalf("backup of an unreachable database: code %d, stderr:\n%s", r.code, r.stderr)
	}
	first, _, _ := strings.Cut(r.stderr, "\n")
	if !strings.Contains(first, " msg=starting command=backup ") || len(first) > 200 {
		t.Errorf("first line (%d characters): %s", len(first), first)
	}
	if strings.Contains(r.stderr, "msg=configuration") || strings.Contains(r.stderr, "s3cret") {
		t.Errorf("stderr shows the configuration or a secret:\n%s", r.stderr)
	}
}
