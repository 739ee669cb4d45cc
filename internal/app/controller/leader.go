package controller

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"keywarden.dev/keywarden/internal/app/options"
	"keywarden.dev/keywarden/internal/leasefence"
)

// leaseName is the leader election Lease's name, kept from the first
// release so that replicas of every release contend for the same one.
const leaseName = "keywarden.dev"

// leaderLock builds the leader election lock of one manager: a Lease in
// the election's namespace (the controller's own when none is given),
// fenced so that the manager's writes stop once its lease is uncertain.
// Its Events (who became leader) go to rec once it is set.
func leaderLock(cfg *rest.Config, le LeaderElection, rec *leaseEvents) (*leasefence.Lock, error) {
	ns := le.Namespace
	if ns == "" {
		ns = options.OwnNamespace()
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("naming this replica for leader election: %w", err)
	}
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// One slow answer must not cost the lease: each request gives up well
	// within the renew deadline.
	cfg.Timeout = max(le.RenewDeadline/2, time.Second)
	coordination, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, ns, leaseName, nil, coordination, resourcelock.ResourceLockConfig{
		Identity:      host + "_" + string(uuid.NewUUID()),
		EventRecorder: rec,
	})
	if err != nil {
		return nil, err
	}
	// Other candidates wait the lease duration in whole seconds (as the
	// Lease records it); the renew deadline is shorter still.
	return leasefence.New(lock, min(le.RenewDeadline, le.LeaseDuration.Truncate(time.Second))), nil
}

// leaseEvents records the lock's Events once the manager's recorder
// exists (the lock is built before the manager).
type leaseEvents struct {
	rec atomic.Pointer[events.EventRecorder]
}

func (l *leaseEvents) set(r events.EventRecorder) { l.rec.Store(&r) }

// Eventf records an Event of the Lease.
func (l *leaseEvents) Eventf(obj runtime.Object, eventType, reason, message string, args ...any) {
	if r := l.rec.Load(); r != nil {
		(*r).Eventf(obj, nil, eventType, reason, "LeaderElection", message, args...)
	}
}
