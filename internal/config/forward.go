package config

import "github.com/identity-upgrade/identity-upgrade/internal/forwardspec"

// PortForwardAuto is the db-port-forward value that finds the database in the release.
const PortForwardAuto = forwardspec.Auto

// UseForward points the connection built from the db-* inputs at the local end of the
// port-forward that db-port-forward asked for: DatabaseConnString then names that host and
// port.
func (c *Config) UseForward(host string, port int) {
	c.DBHost, c.DBPort = host, port
}

// UseClusterPassword sets the database password read through db-password-from. It is from
// then on a secret like db-password: Secrets returns it, and String, LogValue and every
// message quoting a value leave it out. As an action the caller must also mask it.
func (c *Config) UseClusterPassword(password string) {
	c.DBPassword = password
}
