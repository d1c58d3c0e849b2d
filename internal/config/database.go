package config

import (
	"net/url"
	"strconv"
)

// DatabaseConnString returns the connection string for the Keycloak database: database-url
// (with db-password or PGPASSWORD filled in when the URL carries none), or a postgres:// URL
// built from the db-* inputs. It carries the password: never log it.
func (c *Config) DatabaseConnString() string {
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || u.User == nil || c.DBPassword == "" {
			return c.DatabaseURL
		}
		if _, has := u.User.Password(); !has {
			u.User = url.UserPassword(u.User.Username(), c.DBPassword)
		}
		return u.String()
	}
	u := url.URL{
		Scheme: "postgres",
		Host:   c.DBHost + ":" + strconv.Itoa(c.DBPort),
		Path:   "/" + c.DBName,
	}
	if c.DBPassword != "" {
		u.User = url.UserPassword(c.DBUser, c.DBPassword)
	} else {
		u.User = url.User(c.DBUser)
	}
	q := url.Values{}
	q.Set("sslmode", c.DBSSLMode)
	u.RawQuery = q.Encode()
	return u.String()
}
