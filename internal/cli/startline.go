package cli

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/redact"
)

// startAttrs say, for the first log line of a run, what it will do and to what: the command,
// the release, the chart and version it upgrades to, the database (its host and name, or the
// port-forward that reaches it), the stores the backup goes to or the bundle a restore reads.
// Empty values are left out; no user name or password is shown, and any secret value found in
// a shown one is replaced.
func startAttrs(cfg *config.Config) []any {
	var attrs []any
	add := func(key, value string) {
		if value != "" {
			attrs = append(attrs, key, value)
		}
	}
	add("command", cfg.Command)
	add("release", cfg.ReleaseName)
	add("namespace", cfg.Namespace)
	upgrades := cfg.Command == config.CmdUpgrade || cfg.Command == config.CmdPlan || cfg.Command == config.CmdRehearse
	if upgrades {
		add("chart", withoutUserinfo(cfg.Chart))
		add("version", cfg.ChartVersion)
	}
	db, via := databaseTarget(cfg)
	add("database", db)
	add("port-forward", via)
	switch cfg.Command {
	case config.CmdRestore:
		add("from", withoutUserinfo(cfg.From))
		if cfg.RunID != 0 {
			add("run-id", strconv.FormatInt(cfg.RunID, 10))
		}
	case config.CmdUpgrade, config.CmdBackup, config.CmdRecover:
		var stores []string
		for _, s := range cfg.BackupStores {
			stores = append(stores, withoutUserinfo(strings.TrimSpace(s)))
		}
		add("stores", strings.Join(stores, ","))
	}
	if cfg.Command == config.CmdUpgrade && cfg.DryRun {
		attrs = append(attrs, "dry-run", true)
	}
	if cfg.Command == config.CmdRehearse || (cfg.Command == config.CmdUpgrade && cfg.RehearseFirst) {
		add("rehearsal-namespace", cfg.RehearsalNamespaceOrDefault())
	}
	secrets := cfg.Secrets()
	for i := 1; i < len(attrs); i += 2 {
		if s, ok := attrs[i].(string); ok {
			attrs[i] = redact.String(s, secrets)
		}
	}
	return attrs
}

// databaseTarget describes the database a run works on: host:port/name from database-url or
// the db-* inputs, or the name and the port-forward's target when db-port-forward reaches it.
func databaseTarget(cfg *config.Config) (database, portForward string) {
	if cfg.DatabaseURL != "" {
		u, err := url.Parse(cfg.DatabaseURL)
		if err != nil || u.Host == "" {
			return "(from database-url)", ""
		}
		return u.Host + u.Path, ""
	}
	if cfg.DBPortForward != "" {
		return cfg.DBName, cfg.DBPortForward
	}
	if cfg.DBHost == "" {
		return cfg.DBName, ""
	}
	hostPort := net.JoinHostPort(cfg.DBHost, strconv.Itoa(cfg.DBPort))
	if cfg.DBName == "" {
		return hostPort, ""
	}
	return hostPort + "/" + cfg.DBName, ""
}

// withoutUserinfo drops the user and password of a URL; other values are returned as they are.
func withoutUserinfo(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(not shown: not a URL)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
