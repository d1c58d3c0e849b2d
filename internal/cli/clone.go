package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/kubeforward"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// cloner is the rehearsal's clone of the release (rollout.Cloner): the scratch namespace and
// the install are helmrelease's; the clone's database is reached as production's is, through
// the API server in the scratch namespace (the same Service and password: the clone is
// installed under the release's name), or at rehearsal-database-url.
type cloner struct {
	cfg        *config.Config
	client     *helmrelease.Client
	spec       helmrelease.UpgradeSpec
	restConfig *rest.Config
	work       string
	log        *slog.Logger
	// session names the run in the clone database's sessions, as in production's.
	session pgbackup.Session
	// clone is the clone's manifest once installed: the port-forward's auto target.
	clone rollout.Release
}

var _ rollout.Cloner = (*cloner)(nil)

func (c *cloner) CreateScratch(ctx context.Context, namespace, runID string) error {
	return c.client.CreateScratch(ctx, namespace, c.cfg.ReleaseName, runID)
}

func (c *cloner) InstallClone(ctx context.Context, namespace string) (rollout.Release, error) {
	db, err := c.userDatabase()
	if err != nil {
		return rollout.Release{}, err
	}
	rel, err := c.client.InstallClone(ctx, c.cfg.ReleaseName, namespace, c.spec, db, c.cfg.Timeout)
	c.clone = rel
	return rel, err
}

func (c *cloner) RemoveScratch(ctx context.Context, namespace string) error {
	return c.client.RemoveScratch(ctx, namespace, c.cfg.ReleaseName)
}

// userDatabase is the database of the user's the clone's Keycloak uses (rehearsal-database-url),
// or nil for the clone's own bundled PostgreSQL. Its password is the URL's, else the release's
// database password.
func (c *cloner) userDatabase() (*helmrelease.CloneDatabase, error) {
	if c.cfg.RehearsalDatabaseURL == "" {
		return nil, nil
	}
	u, err := url.Parse(c.cfg.RehearsalDatabaseURL)
	if err != nil {
		return nil, errors.New("rehearsal-database-url does not parse")
	}
	db := &helmrelease.CloneDatabase{Host: u.Hostname(), Port: u.Port(), Name: strings.TrimPrefix(u.Path, "/"), Password: c.cfg.DBPassword}
	if db.Port == "" {
		db.Port = "5432"
	}
	if u.User != nil {
		db.User = u.User.Username()
		if p, ok := u.User.Password(); ok {
			db.Password = p
		}
	}
	return db, nil
}

// rehearsalConnString is rehearsal-database-url with the password userDatabase gives it.
func (c *cloner) rehearsalConnString() string {
	u, err := url.Parse(c.cfg.RehearsalDatabaseURL)
	if err != nil || u.User == nil {
		return c.cfg.RehearsalDatabaseURL
	}
	if _, ok := u.User.Password(); !ok && c.cfg.DBPassword != "" {
		u.User = url.UserPassword(u.User.Username(), c.cfg.DBPassword)
	}
	return u.String()
}

// CloneDatabase reaches the clone's database with production's name, user and password.
func (c *cloner) CloneDatabase(ctx context.Context, namespace string) (rollout.CloneDatabase, error) {
	clone := *c.cfg
	session := c.session
	engine := func(conn string) *pgbackup.Engine {
		return &pgbackup.Engine{ConnString: conn, Format: clone.BackupFormat, WorkDir: c.work,
			Clients: pgbackup.ClientChooser{Dir: clone.PgBinDir}, Log: c.log, Session: session}
	}
	if clone.RehearsalDatabaseURL != "" {
		conn := c.rehearsalConnString()
		session.Route = nil
		return &cloneDatabase{Engine: engine(conn), conn: conn, session: session}, nil
	}
	if clone.DBPortForward == "" {
		return nil, errors.New("the database is not the release's bundled PostgreSQL and no rehearsal-database-url was given")
	}
	var spec forwardspec.Spec
	var err error
	if clone.DBPortForward == config.PortForwardAuto {
		spec, err = kubeforward.FromManifest(c.clone.Manifest)
	} else {
		spec, err = forwardspec.Parse(clone.DBPortForward)
	}
	if err != nil {
		return nil, fmt.Errorf("the clone's database in %s: %w", namespace, err)
	}
	fwd, err := kubeforward.Start(ctx, kubeforward.Options{Config: c.restConfig, Client: c.client.Kubernetes(), Namespace: namespace, Spec: spec,
		Attempts: clone.DBAttempts, Backoff: clone.DBRetryBackoff, Log: c.log})
	if err != nil {
		return nil, fmt.Errorf("the clone's database: port-forward %s in %s: %w", spec, namespace, err)
	}
	clone.UseForward(fwd.Host(), fwd.Port())
	conn := clone.DatabaseConnString()
	session.Route = fwd.Route
	return &cloneDatabase{Engine: engine(conn), conn: conn, fwd: fwd, session: session}, nil
}

// cloneDatabase is the clone's database: restores wait until it accepts connections (its pod
// starts with the clone).
type cloneDatabase struct {
	*pgbackup.Engine
	conn    string
	fwd     *kubeforward.Forward
	session pgbackup.Session
}

func (d *cloneDatabase) Restore(ctx context.Context, b rollout.Backup) (string, error) {
	if err := d.session.WaitForDatabase(ctx, d.conn, databaseWait); err != nil {
		return "", err
	}
	return d.Engine.Restore(ctx, b)
}

func (d *cloneDatabase) Inspect(ctx context.Context) (rollout.Database, error) {
	if err := d.session.WaitForDatabase(ctx, d.conn, databaseWait); err != nil {
		return rollout.Database{}, err
	}
	return d.Engine.Inspect(ctx)
}

func (d *cloneDatabase) Realms(ctx context.Context) ([]string, error) {
	return pgbackup.Realms(ctx, d.conn)
}

func (d *cloneDatabase) Close() error {
	if d.fwd != nil {
		return d.fwd.Close()
	}
	return nil
}

// checkRehearsalAccess asks the API server whether the kubeconfig's user may make and remove
// the clone: the scratch namespace (cluster-scoped: a ClusterRole) and what the chart creates
// in it. A missing rule refuses the run before anything is made.
func checkRehearsalAccess(ctx context.Context, client kubernetes.Interface, scratch string) error {
	if err := kubeforward.CheckAccess(ctx, client, "", []kubeforward.Rule{
		{Resource: "namespaces", Verb: "create"}, {Resource: "namespaces", Verb: "delete"}, {Resource: "namespaces", Verb: "get"},
	}); err != nil {
		return fmt.Errorf("rehearsal: %w (a ClusterRole: namespaces are cluster-scoped; see the README's Permissions)", err)
	}
	if err := kubeforward.CheckAccess(ctx, client, scratch, []kubeforward.Rule{
		{Resource: "secrets", Verb: "create"}, {Resource: "services", Verb: "create"}, {Resource: "persistentvolumeclaims", Verb: "create"},
		{Resource: "pods/portforward", Verb: "create"}, {Resource: "pods", Verb: "list"},
	}); err != nil {
		return fmt.Errorf("rehearsal: %w (bound cluster-wide: the namespace does not exist before the run)", err)
	}
	return nil
}
