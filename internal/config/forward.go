package config

import (
	"regexp"
	"strconv"
)

// PortForwardAuto is the db-port-forward value that finds the database in the release.
const PortForwardAuto = "auto"

var (
	// service/NAME[:PORT] or pod/NAME[:PORT]: a DNS subdomain name; a port number or name.
	portForwardSpec = regexp.MustCompile(`^(service|pod)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:([0-9]{1,5}|[a-z0-9]([-a-z0-9]*[a-z0-9])?))?$`)
	// secret/NAME:KEY: a DNS subdomain name; a Secret data key.
	secretKeyRef = regexp.MustCompile(`^secret/[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[-._a-zA-Z0-9]+$`)
)

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

// validPortForward reports whether s is service/NAME[:PORT] or pod/NAME[:PORT] with a name
// of at most 253 characters and a port in 1-65535 or a port name of at most 15.
func validPortForward(s string) bool {
	m := portForwardSpec.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	name, port := s[len(m[1])+1:], m[4]
	if port != "" {
		name = name[:len(name)-len(port)-1]
		if n, err := strconv.Atoi(port); err == nil {
			if n < 1 || n > 65535 {
				return false
			}
		} else if len(port) > 15 {
			return false
		}
	}
	return len(name) <= 253
}
