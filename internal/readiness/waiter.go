// Package readiness decides whether the resources of a Helm release are ready: kstatus on every
// object of the manifest, watched through informers, plus pod-level signals that decide a
// failure at once (CrashLoopBackOff, image pull errors, Unschedulable, a container that exits
// with an error, a restart count that rises), a stability window once all are ready, and an
// optional HTTP probe. It implements rollout.Waiter.
package readiness

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Waiter waits for the resources of a manifest to become ready and stay ready.
type Waiter struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	Log     *slog.Logger
	// HTTPClient is used for the probe URL; nil means a default client with a short timeout.
	HTTPClient *http.Client
}

var _ rollout.Waiter = (*Waiter)(nil)

// New returns a Waiter for the cluster of cfg. A nil log discards.
func New(cfg *rest.Config, log *slog.Logger) (*Waiter, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	return &Waiter{Client: client, Dynamic: dyn, Mapper: mapper, Log: log}, nil
}

// safetyTick re-evaluates everything now and then, in case a timer and an event race; all
// real progress comes from watch events.
const safetyTick = 500 * time.Millisecond

// Wait watches every resource of req.Manifest until all are Current (kstatus) and have stayed
// so, with no decisive pod signal and a passing probe, for req.StabilityWindow. A failure is a
// *rollout.NotReady; a cancelled ctx returns its error (wrapped), not a NotReady.
func (w *Waiter) Wait(ctx context.Context, req rollout.WaitRequest) error {
	start := time.Now()
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resources, err := parseManifest(req.Manifest, req.Namespace, w.Mapper)
	if err != nil {
		return fmt.Errorf("wait for readiness: %w", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	kick := make(chan struct{}, 1)
	notify := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	podEvents := make(chan *corev1.Pod, 256)
	watchErrs := &lastError{}

	var informersSynced []cache.InformerSynced
	run := func(name string, inf cache.SharedIndexInformer) {
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			watchErrs.set(fmt.Errorf("watch %s: %w", name, err))
			log.Debug("watch error", "what", name, "err", err)
		})
		informersSynced = append(informersSynced, inf.HasSynced)
		wg.Go(func() { inf.RunWithContext(runCtx) })
	}

	st := &state{resources: resources, stores: make([]cache.Store, len(resources)), pods: map[string]cache.Store{}, seen: restarts{}}
	for i, r := range resources {
		inf := dynamicinformer.NewFilteredDynamicInformer(w.Dynamic, r.gvr, r.namespace, 0, cache.Indexers{},
			func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", r.name).String()
			},
		).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { notify() },
			UpdateFunc: func(any, any) { notify() },
			DeleteFunc: func(any) { notify() },
		}); err != nil {
			return fmt.Errorf("wait for readiness: watch %s: %w", r.id(), err)
		}
		st.stores[i] = inf.GetStore()
		run(r.id(), inf)
	}
	for _, r := range resources {
		if !r.workload() || st.pods[r.namespace] != nil {
			continue
		}
		inf := informers.NewSharedInformerFactoryWithOptions(w.Client, 0, informers.WithNamespace(r.namespace)).Core().V1().Pods().Informer()
		send := func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				select {
				case podEvents <- pod:
				case <-runCtx.Done():
				}
			}
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    send,
			UpdateFunc: func(_, obj any) { send(obj) },
			DeleteFunc: func(any) { notify() },
		}); err != nil {
			return fmt.Errorf("wait for readiness: watch pods in %s: %w", r.namespace, err)
		}
		st.pods[r.namespace] = inf.GetStore()
		run("pods in "+r.namespace, inf)
	}

	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	synced := make(chan struct{})
	wg.Go(func() {
		if cache.WaitForCacheSync(runCtx.Done(), informersSynced...) {
			close(synced)
		}
	})
	select {
	case <-synced:
	case <-ctx.Done():
		return fmt.Errorf("wait for readiness: %w", ctx.Err())
	case <-timeout:
		msg := fmt.Sprintf("the watches did not sync within %s", req.Timeout)
		if err := watchErrs.get(); err != nil {
			msg += ": " + err.Error()
		}
		return &rollout.NotReady{Reason: "Timeout", Message: msg, After: time.Since(start)}
	}
	log.Debug("watching", "resources", len(resources), "after", time.Since(start))

	probeStart := make(chan struct{})
	probeResults := make(chan probeResult)
	if req.ProbeURL != "" {
		wg.Go(func() { w.prober(runCtx, req.ProbeURL, probeStart, probeResults) })
	}
	safety := time.NewTicker(safetyTick)
	defer safety.Stop()
	windowTimer := time.NewTimer(time.Hour)
	windowTimer.Stop()
	defer windowTimer.Stop()

	lagging := map[*resource]bool{}
	var (
		inWindow     bool
		windowEnd    time.Time
		probeStarted bool
		probeOK      bool
		probeErr     error
	)
	fail := func(nr *rollout.NotReady, sig *podSignal, namespace string) error {
		nr.InWindow = inWindow
		if sig != nil && sig.container != "" {
			nr.Logs = w.containerLogs(ctx, namespace, nr.Pod, *sig, req.LogLines)
		}
		nr.After = time.Since(start)
		log.Info("not ready", "resource", nr.Resource, "pod", nr.Pod, "container", nr.Container,
			"reason", nr.Reason, "message", nr.Message, "in_window", nr.InWindow, "after", nr.After)
		return nr
	}

	for {
		ev := st.evaluate(log)
		if ev.failed != nil {
			return fail(ev.failed, ev.signal, ev.namespace)
		}
		now := time.Now()
		switch {
		case inWindow && ev.pending != nil:
			// The workload's status can run ahead of the pod cache: a crashed pod explains
			// the drop better than the drop itself, so ask the API server for its pods.
			nr, sig, ns, steady := w.freshPods(ctx, st, ev.pending.res)
			if nr != nil {
				return fail(nr, sig, ns)
			}
			if !steady {
				return fail(&rollout.NotReady{
					Resource: ev.pending.res.id(), Reason: "NotReadyAgain",
					Message: fmt.Sprintf("%s again: %s", ev.pending.status, ev.pending.message),
				}, nil, "")
			}
			// The status went back while its pods did not: a controller publishing a status
			// computed from a stale cache (seen right after a StatefulSet was re-created).
			// The window goes on; it ends only once the status is current again.
			if !lagging[ev.pending.res] {
				lagging[ev.pending.res] = true
				log.Info("status behind its pods, which are all still ready; waiting for it", "resource", ev.pending.res.id(),
					"status", ev.pending.status, "message", ev.pending.message)
			}
		case inWindow && !now.Before(windowEnd):
			if req.ProbeURL != "" {
				pctx, pcancel := context.WithTimeout(ctx, probeTimeout)
				err := w.probe(pctx, req.ProbeURL)
				pcancel()
				if ctx.Err() != nil {
					return fmt.Errorf("wait for readiness: %w", ctx.Err())
				}
				if err != nil {
					return fail(&rollout.NotReady{Resource: "probe " + req.ProbeURL, Reason: "ProbeFailed", Message: err.Error()}, nil, "")
				}
			}
			log.Info("ready", "resources", len(resources), "window", req.StabilityWindow, "after", time.Since(start))
			return nil
		case !inWindow && ev.pending == nil:
			if req.ProbeURL != "" && !probeStarted {
				probeStarted = true
				close(probeStart)
			}
			if req.ProbeURL == "" || probeOK {
				inWindow = true
				st.windowPods = st.readyPods()
				windowEnd = now.Add(req.StabilityWindow)
				windowTimer.Reset(req.StabilityWindow)
				log.Info("all resources ready; stability window", "window", req.StabilityWindow, "after", time.Since(start))
				continue
			}
		}

		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for readiness: %w", ctx.Err())
		case <-timeout:
			return fail(st.timedOut(req, inWindow, probeErr), nil, "")
		case <-kick:
		case pod := <-podEvents:
			if nr, sig, ns := st.checkPod(pod); nr != nil {
				return fail(nr, sig, ns)
			}
		case r := <-probeResults:
			probeOK = r.err == nil
			if r.err != nil {
				probeErr = r.err
				log.Debug("probe failed", "url", req.ProbeURL, "err", r.err)
				if inWindow {
					return fail(&rollout.NotReady{Resource: "probe " + req.ProbeURL, Reason: "ProbeFailed", Message: r.err.Error()}, nil, "")
				}
			}
		case <-windowTimer.C:
		case <-safety.C:
		}
	}
}

// state is what the wait knows: the resources, their watched objects and the pods.
type state struct {
	resources []*resource
	stores    []cache.Store
	pods      map[string]cache.Store // by namespace
	seen      restarts
	last      []status.Status
	// windowPods are the workloads' ready pods when the stability window started.
	windowPods map[types.UID]bool
}

// readyPods returns the ready pods, not being deleted, of the manifest's workloads.
func (st *state) readyPods() map[types.UID]bool {
	ready := map[types.UID]bool{}
	for _, store := range st.pods {
		for _, obj := range store.List() {
			if pod, ok := obj.(*corev1.Pod); ok && pod.DeletionTimestamp == nil && podReady(pod) && st.owner(pod) != nil {
				ready[pod.UID] = true
			}
		}
	}
	return ready
}

type pending struct {
	res     *resource
	status  status.Status
	message string
}

type evaluation struct {
	// failed is the first decisive signal (signal and namespace are set for a pod's).
	failed    *rollout.NotReady
	signal    *podSignal
	namespace string
	// pending is the first resource that is not Current; nil when all are.
	pending *pending
}

func (st *state) live(i int) *unstructured.Unstructured {
	obj, ok, err := st.stores[i].GetByKey(st.resources[i].key())
	if err != nil || !ok {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u
}

// compute is the kstatus of resource i.
func (st *state) compute(i int) (status.Status, string) {
	u := st.live(i)
	if u == nil {
		return status.NotFoundStatus, "not found"
	}
	res, err := status.Compute(u)
	if err != nil {
		return status.UnknownStatus, err.Error()
	}
	return res.Status, res.Message
}

// evaluate computes every resource's status and checks every pod of the workloads.
func (st *state) evaluate(log *slog.Logger) evaluation {
	var ev evaluation
	if st.last == nil {
		st.last = make([]status.Status, len(st.resources))
	}
	for i, r := range st.resources {
		s, msg := st.compute(i)
		if s != st.last[i] {
			st.last[i] = s
			log.Info("resource", "resource", r.id(), "status", s, "message", msg)
		}
		if s == status.FailedStatus {
			ev.failed = &rollout.NotReady{Resource: r.id(), Reason: "Failed", Message: msg}
			return ev
		}
		if s != status.CurrentStatus && ev.pending == nil {
			ev.pending = &pending{res: r, status: s, message: msg}
		}
	}
	for ns, store := range st.pods {
		for _, obj := range store.List() {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.Namespace != ns {
				continue
			}
			if nr, sig, ns := st.checkPod(pod); nr != nil {
				ev.failed, ev.signal, ev.namespace = nr, sig, ns
				return ev
			}
		}
	}
	return ev
}

// owner returns the first workload of the manifest whose selector matches the pod.
func (st *state) owner(pod *corev1.Pod) *resource {
	set := labels.Set(pod.Labels)
	for i, r := range st.resources {
		if !r.workload() || r.namespace != pod.Namespace {
			continue
		}
		sel, err := selectorOf(st.live(i), r.desired)
		if err != nil || sel == nil {
			continue
		}
		if sel.Matches(set) {
			return r
		}
	}
	return nil
}

// checkPod returns the pod's decisive signal as a NotReady, if the pod belongs to a workload
// of the manifest and is not being deleted.
func (st *state) checkPod(pod *corev1.Pod) (*rollout.NotReady, *podSignal, string) {
	if pod.DeletionTimestamp != nil {
		return nil, nil, ""
	}
	r := st.owner(pod)
	if r == nil {
		return nil, nil, ""
	}
	st.seen.observe(pod)
	sig, ok := decisive(pod, st.seen)
	if !ok {
		return nil, nil, ""
	}
	return &rollout.NotReady{
		Resource: r.id(), Pod: pod.Name, Container: sig.container, Reason: sig.reason, Message: sig.message,
	}, &sig, pod.Namespace
}

// timedOut describes what was still not ready when the timeout expired.
func (st *state) timedOut(req rollout.WaitRequest, inWindow bool, probeErr error) *rollout.NotReady {
	nr := &rollout.NotReady{Reason: "Timeout"}
	for i, r := range st.resources {
		s, msg := st.compute(i)
		if s == status.CurrentStatus {
			continue
		}
		nr.Resource = r.id()
		nr.Message = fmt.Sprintf("%s after %s: %s", s, req.Timeout, msg)
		if r.workload() {
			if pod := st.pendingPod(i); pod != nil {
				nr.Pod = pod.Name
				nr.Message += "; " + describePending(pod)
			}
		}
		return nr
	}
	switch {
	case inWindow:
		nr.Resource = "all resources"
		nr.Message = fmt.Sprintf("the timeout of %s expired inside the stability window of %s", req.Timeout, req.StabilityWindow)
	case req.ProbeURL != "":
		nr.Resource = "probe " + req.ProbeURL
		nr.Message = fmt.Sprintf("all resources are ready but the probe did not succeed within %s", req.Timeout)
		if probeErr != nil {
			nr.Message += ": " + probeErr.Error()
		}
	default:
		nr.Resource = "all resources"
		nr.Message = fmt.Sprintf("timeout of %s expired", req.Timeout)
	}
	return nr
}

// pendingPod is the first pod of workload i that is not ready.
func (st *state) pendingPod(i int) *corev1.Pod {
	r := st.resources[i]
	store := st.pods[r.namespace]
	if store == nil {
		return nil
	}
	sel, err := selectorOf(st.live(i), r.desired)
	if err != nil || sel == nil {
		return nil
	}
	var first *corev1.Pod
	for _, obj := range store.List() {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.DeletionTimestamp != nil || !sel.Matches(labels.Set(pod.Labels)) || podReady(pod) {
			continue
		}
		if first == nil || pod.Name < first.Name {
			first = pod
		}
	}
	return first
}

// lastError keeps the latest watch error, for a timeout's message.
type lastError struct {
	mu  sync.Mutex
	err error
}

func (l *lastError) set(err error) { l.mu.Lock(); l.err = err; l.mu.Unlock() }

func (l *lastError) get() error { l.mu.Lock(); defer l.mu.Unlock(); return l.err }

// freshPods lists the pods of workload r straight from the API server (the informer's cache
// may lag the workload's own status by a moment) and returns the first decisive signal among
// them, if any. steady reports whether the pods show the workload as it was when the
// stability window started: exactly as many pods as its spec.replicas, each one of the ready
// pods of that moment, still ready, not being deleted, and (for a StatefulSet) controlled by
// the workload. A pod replaced, restarted into unreadiness, or missing is not steady.
func (w *Waiter) freshPods(ctx context.Context, st *state, r *resource) (_ *rollout.NotReady, _ *podSignal, _ string, steady bool) {
	if !r.workload() {
		return nil, nil, "", false
	}
	for i, res := range st.resources {
		if res != r {
			continue
		}
		live := st.live(i)
		sel, err := selectorOf(live, r.desired)
		if err != nil || sel == nil || live == nil {
			return nil, nil, "", false
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pods, err := w.Client.CoreV1().Pods(r.namespace).List(lctx, metav1.ListOptions{LabelSelector: sel.String()})
		cancel()
		if err != nil {
			return nil, nil, "", false
		}
		for k := range pods.Items {
			if nr, sig, ns := st.checkPod(&pods.Items[k]); nr != nil {
				return nr, sig, ns, false
			}
		}
		replicas, found, err := unstructured.NestedInt64(live.Object, "spec", "replicas")
		if err != nil || !found || int64(len(pods.Items)) != replicas {
			return nil, nil, "", false
		}
		for k := range pods.Items {
			pod := &pods.Items[k]
			if pod.DeletionTimestamp != nil || !podReady(pod) || !st.windowPods[pod.UID] {
				return nil, nil, "", false
			}
			if owner := metav1.GetControllerOf(pod); live.GetKind() == "StatefulSet" && (owner == nil || owner.UID != live.GetUID()) {
				return nil, nil, "", false
			}
		}
		return nil, nil, "", true
	}
	return nil, nil, "", false
}
