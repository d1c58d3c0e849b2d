// Package store keeps backup bundles outside the run, one pgbackup.Store per kind of place:
// GitHub Actions artifacts (v4) and OCI registries (oci://registry/repo[:tag]). The path:DIR
// store is pgbackup.DirStore.
package store
