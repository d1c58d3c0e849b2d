// Package keycloak is the Identity Service's Keycloak as the upgrade handles it: its admin
// REST API (Admin: one login, one way to call and retry) through which the users' sessions
// are logged out and the realms read; the transaction object store deleted in the running
// pods through pod exec; and the workloads of a release (found in its manifest by what they
// run, Detect) scaled to zero and back around the upgrade.
package keycloak
