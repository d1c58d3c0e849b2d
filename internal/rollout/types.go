// Package rollout is the upgrade procedure: preflight, quiesce, backup, upgrade, readiness,
// rollback and report, one step after another. It owns the small interfaces it consumes and
// imports no outside system; the adapters (helmrelease, pgbackup, readiness, store, keycloak,
// ghaction) implement them.
package rollout

import (
	"fmt"
	"slices"
	"strings"
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

	// What a rendered target found that a plain helm upgrade would fail on, or drop:
	//
	// RemovedAPIs are the objects of the stored manifest of the revision the upgrade starts
	// from whose apiVersion the cluster no longer serves (helm cannot build that manifest);
	// map-removed-apis maps them. ConvertedAPIs are the objects of the render that were
	// converted from removed APIs (helm could not apply them as rendered);
	// convert-removed-apis applies the conversion. ValueMoves are the values that move to the
	// key the target chart reads them under (moved when migrate-values is on, else reused
	// under their old key and dropped). MissingReferences are the objects the new manifest's
	// pods need that neither exist in the cluster nor are created by the manifest.
	RemovedAPIs       []APIConversion
	ConvertedAPIs     []APIConversion
	ValueMoves        []ValueMove
	MissingReferences []Reference
}

// APIConversion is one object whose apiVersion the cluster no longer serves, and the served
// API it converts to.
type APIConversion struct {
	Kind string
	Name string
	// From is the removed apiVersion, RemovedIn the Kubernetes version that removed it, To the
	// served apiVersion it converts to ("": dropped, the API has no replacement).
	From      string
	To        string
	RemovedIn string
	// Fields says what changes besides the apiVersion.
	Fields []string
}

// Object names the converted object as "Kind/name".
func (c APIConversion) Object() string { return c.Kind + "/" + c.Name }

func (c APIConversion) String() string {
	to := c.To
	if to == "" {
		to = "(dropped: no replacement)"
	}
	s := fmt.Sprintf("%s %s → %s (removed in Kubernetes %s)", c.Object(), c.From, to, c.RemovedIn)
	if len(c.Fields) > 0 {
		s += ": " + strings.Join(c.Fields, "; ")
	}
	return s
}

// ValueMove is one value that the target chart reads under another key than the release's.
type ValueMove struct {
	// From and To are the paths (a.b.c); Value is the value as it may be shown (secrets
	// redacted, structures summarised); Note says what else happened.
	From, To, Value, Note string
	// Given: the value comes from the run's own values; else it is reused from the release.
	Given bool
}

func (m ValueMove) String() string {
	s := m.From + " → " + m.To
	if m.Value != "" {
		s += " = " + m.Value
	}
	if m.Note != "" {
		s += " (" + m.Note + ")"
	}
	return s
}

// Reference is an object that a pod of the new manifest needs and that is not there.
type Reference struct {
	// Kind and Name name the object (a Secret, ConfigMap, PersistentVolumeClaim,
	// ServiceAccount, PriorityClass or StorageClass); Referrer the object that needs it
	// ("StatefulSet/identity-id-keycloak"), Field where ("imagePullSecrets").
	Kind, Name, Referrer, Field string
	// Optional: marked optional: true; the pod starts without it.
	Optional bool
	// Unchecked says why the object could not be looked up (forbidden); "" when it is known
	// to be missing.
	Unchecked string
}

// Object names the referenced object as "Kind/name".
func (r Reference) Object() string { return r.Kind + "/" + r.Name }

func (r Reference) String() string {
	return fmt.Sprintf("%s (%s of %s)", r.Object(), r.Field, r.Referrer)
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
