// Package keycloak is the Identity Service's Keycloak as the upgrade handles it: the
// workloads of a release scaled to zero and back around the upgrade (the downtime the vendor
// procedure asks for), found in the release manifest.
package keycloak
