// Package store keeps backup bundles outside the run, one bundle.Store per kind of place:
// GitHub Actions artifacts (v4) and OCI registries (oci://registry/repo[:tag]). The path:DIR
// store is bundle.DirStore.
package store
