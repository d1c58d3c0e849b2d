// Package helmrelease is the project's only importer of helm.sh/helm/v3: it reads, upgrades and rolls back the identity service release.
package helmrelease
