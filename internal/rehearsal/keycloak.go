package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The simulated cluster's pods run no Keycloak: the rehearsal plays Keycloak's part towards the
// database itself. A keycloak watches the Keycloak pods during one identity-upgrade run and,
// when the first pod of its version that did not exist when the run started becomes Ready,
// does to the database what that version does by then, once.
type keycloak struct {
	// name says which Keycloak it plays, for the narration.
	name string
	// ofVersion says whether a Keycloak pod is of the version it plays.
	ofVersion func(*corev1.Pod) bool
	// act changes the database and says what it did.
	act func(ctx context.Context, db testworld.Database) (string, error)
}

const (
	// keycloakSelector selects the release's Keycloak pods, in both charts.
	keycloakSelector = "app.kubernetes.io/name=keycloak,app.kubernetes.io/instance=" + Release
	// keycloak12Image is the Keycloak image of the 1.4-like chart (3.0.0).
	keycloak12Image = "alfresco/alfresco-identity-service:1.4.0"
	// faultLabel is the pod label of the test charts' fault value.
	faultLabel = "identity-upgrade.test/fault"
)

// keycloak12 is Identity Service 1.4's Keycloak 12.0.4 starting on the Keycloak 11 database: it
// migrates the schema (Liquibase changesets of 12.0.0, then MigrateTo12_0_0) before it serves,
// so by the time its pod is Ready the database is Keycloak 12's.
func keycloak12(root string) keycloak {
	return keycloak{
		name: "Keycloak 12",
		ofVersion: func(pod *corev1.Pod) bool {
			return pod.Labels[faultLabel] == "" && len(pod.Spec.Containers) > 0 && pod.Spec.Containers[0].Image == keycloak12Image
		},
		act: func(ctx context.Context, db testworld.Database) (string, error) {
			path := filepath.Join(root, "testdata", "sql", "keycloak-12-migration.sql")
			sql, err := os.ReadFile(path)
			if err != nil {
				return "", err
			}
			if _, err := db.Run(ctx, "SET ROLE "+db.Owner+";\n"+string(sql)); err != nil {
				return "", fmt.Errorf("migrate the schema: %w", err)
			}
			state, err := schemaState(ctx, db)
			if err != nil {
				return "", err
			}
			return "migrated the schema to Keycloak 12 (testdata/sql/keycloak-12-migration.sql, as " + db.Owner + "): " + state, nil
		},
	}
}

// brokenKeycloak12 is the broken 1.4's Keycloak (pod label fault=crash-after-ready): between its
// Ready and its crash it serves, and writes as a running Keycloak does, changing rows in place.
// The schema state stays as it was: only a comparison of the rows tells the database from the
// backup.
func brokenKeycloak12() keycloak {
	return keycloak{
		name: "the broken Keycloak 12",
		ofVersion: func(pod *corev1.Pod) bool {
			return pod.Labels[faultLabel] == "crash-after-ready"
		},
		act: func(ctx context.Context, db testworld.Database) (string, error) {
			// One psql run, one transaction: the writes land well before the crash.
			out, err := db.Run(ctx, "SET ROLE "+db.Owner+";\n"+brokenWrites)
			if err != nil {
				return "", fmt.Errorf("write as a running Keycloak: %w", err)
			}
			if got, want := strings.Fields(out), []string{"realm", "credential", "event_entity"}; !slices.Equal(got, want) {
				return "", fmt.Errorf("write as a running Keycloak: rows written %q, want one in each of %q", got, want)
			}
			return "before its crash, wrote as a running Keycloak does: an administrator pushed a not-before revocation in realm alfresco " +
				"(UPDATE realm), user0001 changed their password (UPDATE credential: new hash and salt) and logged in (INSERT event_entity: LOGIN)", nil
		},
	}
}

// brokenWrites are the broken Keycloak's writes, each returning the name of its table.
const brokenWrites = `BEGIN;
UPDATE realm SET not_before = 1760000000 WHERE id = 'alfresco' RETURNING 'realm';
UPDATE credential
SET secret_data = '{"value":"cmVoZWFyc2FsLW5ldy1wYXNzd29yZC1oYXNo","salt":"cmVoZWFyc2FsLXNhbHQ=","additionalParameters":{}}',
    created_date = 1760000000000
WHERE type = 'password' AND user_id = (SELECT id FROM user_entity WHERE realm_id = 'alfresco' AND username = 'user0001')
RETURNING 'credential';
INSERT INTO event_entity (id, client_id, details_json, error, ip_address, realm_id, session_id, event_time, type, user_id)
SELECT '5e1f0c4a-7d3b-4c2e-9a61-0d8b2f4e7a01', 'account', '{"auth_method":"openid-connect","username":"user0001"}', NULL,
    '10.42.0.77', 'alfresco', '5e1f0c4a-7d3b-4c2e-9a61-0d8b2f4e7a02', 1760000001000, 'LOGIN', id
FROM user_entity WHERE realm_id = 'alfresco' AND username = 'user0001'
RETURNING 'event_entity';
COMMIT;
`

// watch starts playing k during one run. The watch is established when it returns; done stops
// it, waits for k's act if it began, and returns what k did, or an error if it never acted.
func (k keycloak) watch(ctx context.Context, client kubernetes.Interface, namespace string, db testworld.Database, say func(string, ...any)) (done func() (string, error), err error) {
	existing, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: keycloakSelector})
	if err != nil {
		return nil, fmt.Errorf("list the Keycloak pods: %w", err)
	}
	old := map[types.UID]bool{}
	for _, p := range existing.Items {
		old[p.UID] = true
	}

	start := time.Now()
	var (
		mu     sync.Mutex
		closed bool
		fired  bool
		what   string
		actErr error
		acted  = make(chan struct{})
	)
	seen := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || old[pod.UID] || !k.ofVersion(pod) || !ready(pod) {
			return
		}
		mu.Lock()
		if closed || fired {
			mu.Unlock()
			return
		}
		fired = true
		mu.Unlock()
		// The act runs on the informer's goroutine: later events of this pod wait for it.
		at := time.Since(start).Round(100 * time.Millisecond)
		w, err := k.act(ctx, db)
		if err != nil {
			say("%s (simulated): pod %s Ready %s into the run; FAILED: %v", k.name, pod.Name, at, err)
		} else {
			say("%s (simulated): pod %s Ready %s into the run; %s", k.name, pod.Name, at, w)
		}
		mu.Lock()
		what, actErr = w, err
		mu.Unlock()
		close(acted)
	}

	watchCtx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = keycloakSelector }))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("watch the Keycloak pods: %w", err)
	}
	factory.Start(watchCtx.Done())
	if !cache.WaitForCacheSync(watchCtx.Done(), inf.HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, errors.New("watch the Keycloak pods: the watch did not sync")
	}
	return func() (string, error) {
		mu.Lock()
		closed = true
		wasFired := fired
		mu.Unlock()
		if wasFired {
			<-acted
		}
		cancel()
		factory.Shutdown()
		if !wasFired {
			return "", fmt.Errorf("%s (simulated) never saw a new pod of its version become Ready", k.name)
		}
		mu.Lock()
		defer mu.Unlock()
		return what, actErr
	}, nil
}

func ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
