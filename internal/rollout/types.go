// Package rollout is the upgrade procedure: preflight, quiesce, backup, upgrade, readiness,
// rollback and report, one step after another. It owns the small interfaces it consumes and
// imports no outside system; the adapters (helmrelease, pgbackup, readiness, store, keycloak,
// ghaction) implement them.
package rollout

import (
	"slices"
	"time"
)

// Release is one revision of a Helm release as the procedure sees it.
type Release struct {
	Name         string
	Namespace    string
	Revision     int
	Status       string
	ChartName    string
	ChartVersion string
	AppVersion   string
	Manifest     string
	Hooks        []Hook
	Updated      time.Time
	// UnreadValues are the paths (a.b.c) of user-supplied values the revision's chart has no
	// key for, so its templates most likely do not read them: on a rendered target, values
	// reused from the current revision under keys the new chart moved or dropped.
	UnreadValues []string
}

// Pending reports whether a helm operation on the release is in progress, or was left in
// progress by a process that died: every later helm call is refused until it is unlocked.
func (r Release) Pending() bool {
	switch r.Status {
	case "pending-install", "pending-upgrade", "pending-rollback":
		return true
	}
	return false
}

// Chart names the chart and version of a revision, as "name-version".
func (r Release) Chart() string { return r.ChartName + "-" + r.ChartVersion }

// Hook is a chart hook resource of a revision.
type Hook struct {
	Kind   string
	Name   string
	Events []string
}

// RunsOn reports whether the hook runs on the given event (e.g. "pre-rollback").
func (h Hook) RunsOn(event string) bool {
	for _, e := range h.Events {
		if e == event {
			return true
		}
	}
	return false
}

// ChangeAction says what an upgrade does to one resource.
type ChangeAction string

const (
	Added   ChangeAction = "add"
	Removed ChangeAction = "remove"
	Changed ChangeAction = "change"
)

// Change is one resource that differs between the current and the target manifest.
type Change struct {
	Action    ChangeAction
	Kind      string
	Namespace string
	Name      string
	// Immutable lists the fields that change but that the API server refuses to update
	// (e.g. "spec.selector" of a StatefulSet): a plain upgrade fails on them.
	Immutable []string
	// Diff is a unified diff of the resource's manifest, current → target, Secret values
	// redacted.
	Diff string
}

// Resource names the change's resource as "Kind/name".
func (c Change) Resource() string { return c.Kind + "/" + c.Name }

// ImmutableStatefulSets returns the names, sorted, of the StatefulSets that the changes would
// alter in an immutable field: the ones an upgrade (or a rollback) can only apply after
// re-creating them. With a namespace, changes in other namespaces are left out, since the
// re-creation works in that namespace only.
func ImmutableStatefulSets(changes []Change, namespace string) []string {
	var names []string
	for _, c := range changes {
		if c.Kind != "StatefulSet" || c.Action != Changed || len(c.Immutable) == 0 {
			continue
		}
		if namespace != "" && c.Namespace != "" && c.Namespace != namespace {
			continue
		}
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Database is what the preflight learns about the Keycloak database.
type Database struct {
	ServerVersion string
	ServerMajor   int
	Name          string
	SizeBytes     int64
	Tables        int
	Schema        SchemaState
	// PgDumpVersion is the version of the client tools (pg_dump, pg_restore, psql) that
	// would take the backup and restore it, PgDumpMajor its major version, and ClientDir
	// where they are.
	PgDumpVersion string
	PgDumpMajor   int
	ClientDir     string
	// ClientProblem says why no installed client tools suit the server, when none do.
	ClientProblem string
}

// SchemaState is Keycloak's migration state; a change between two readings means Keycloak
// migrated the schema.
type SchemaState struct {
	ChangelogRows    int64
	LatestChangeID   string
	MigrationVersion string
}
