// Package keycloak is the Identity Service's Keycloak as the upgrade handles it, the vendor's
// first steps and its downtime: the users' sessions logged out through the admin REST API, the
// transaction object store deleted in the running pods through pod exec, and the workloads of
// a release (found in its manifest) scaled to zero and back around the upgrade.
package keycloak
