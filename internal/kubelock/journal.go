package kubelock

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// JournalKey is the ConfigMap data key that holds the journal as JSON.
const JournalKey = "journal.json"

// Journal keeps each release's run journal in a ConfigMap of the release's namespace, named
// like the release's Lease (LeaseName) and labelled as it is. A ConfigMap and not the Lease's
// annotations: the Lease is deleted when a run ends and taken over when it expires, and the
// journal must outlive both to tell the next run what an interrupted one left. Writes use the
// resourceVersion last read or written (optimistic concurrency): a journal someone else wrote
// in between is not overwritten.
type Journal struct {
	Client    kubernetes.Interface
	Namespace string

	mu       sync.Mutex
	versions map[string]string // release → resourceVersion last seen ("" : absent)
}

var _ rollout.Journaler = (*Journal)(nil)

// Read implements rollout.Journaler.
func (j *Journal) Read(ctx context.Context, release string) (rollout.Journal, error) {
	cm, err := j.Client.CoreV1().ConfigMaps(j.Namespace).Get(ctx, LeaseName(release), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		j.seen(release, "")
		return rollout.Journal{}, nil
	}
	if err != nil {
		return rollout.Journal{}, fmt.Errorf("read journal %s/%s: %w", j.Namespace, LeaseName(release), err)
	}
	j.seen(release, cm.ResourceVersion)
	var out rollout.Journal
	if data := cm.Data[JournalKey]; data != "" {
		if err := json.Unmarshal([]byte(data), &out); err != nil {
			return rollout.Journal{}, fmt.Errorf("journal %s/%s: %s does not parse: %w", j.Namespace, cm.Name, JournalKey, err)
		}
	}
	return out, nil
}

// Write implements rollout.Journaler: it creates the ConfigMap, or updates it at the version
// this process last saw. A Write without an earlier Read reads the version first.
func (j *Journal) Write(ctx context.Context, release string, entry rollout.Journal) error {
	data, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	version, known := j.version(release)
	if !known {
		if _, err := j.Read(ctx, release); err != nil {
			return err
		}
		version, _ = j.version(release)
	}
	cms := j.Client.CoreV1().ConfigMaps(j.Namespace)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: LeaseName(release), Namespace: j.Namespace, ResourceVersion: version,
			Labels:      map[string]string{ManagedByLabel: ManagedBy},
			Annotations: map[string]string{ReleaseAnnotation: release},
		},
		Data: map[string]string{JournalKey: string(data)},
	}
	var out *corev1.ConfigMap
	if version == "" {
		out, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	} else {
		out, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("journal %s/%s was written by another run meanwhile: %w", j.Namespace, cm.Name, err)
		}
		return fmt.Errorf("write journal %s/%s: %w", j.Namespace, cm.Name, err)
	}
	j.seen(release, out.ResourceVersion)
	return nil
}

func (j *Journal) seen(release, version string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.versions == nil {
		j.versions = map[string]string{}
	}
	j.versions[release] = version
}

func (j *Journal) version(release string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.versions[release]
	return v, ok
}
