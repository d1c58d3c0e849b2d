// Package bundle is the backup bundle's format and the path store's layout, and nothing of
// PostgreSQL: a bundle is a directory holding manifest.json, written last, and the files it
// lists beside it (the dump, and for an upgrade the release's values and rendered manifest),
// each named and checked by the manifest. Here are the manifest and its checks (Open), the
// age encryption of a bundle's files for the stores (EncryptedCopy), the Store interface the
// stores implement, and the path:DIR store (DirStore: DIR/<backup-name>/). pgbackup writes
// the dump into a bundle and restores from one; store keeps bundles in GitHub artifacts and
// OCI registries.
package bundle
