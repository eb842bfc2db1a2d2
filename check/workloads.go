package gometro

import (
	"net/netip"
	"runtime/debug"
	"sync"

	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	"github.com/DataDog/datadog-agent/comp/core/tagger/types"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
	"github.com/DataDog/datadog-agent/pkg/util/log"

	"github.com/gometro/go-metro/rttcheck"
)

// workloads is rttcheck.Workloads from the agent's workload metadata (the
// containers and pods of this host, with their addresses) and its tagger
// (their tags). One serves every instance of the check: it subscribes to
// workloadmeta when the first instance is configured and unsubscribes when
// the last is cancelled.
type workloads struct {
	store  workloadmeta.Component
	tagger tagger.Component

	mu      sync.Mutex
	users   int
	ch      chan workloadmeta.EventBundle // the subscription, nil without users
	addrs   map[workloadmeta.EntityID][]netip.Addr
	byAddr  map[netip.Addr]types.EntityID // tagger entity of each address
	changed chan struct{}                 // closed and replaced when byAddr changes
}

// subscriberName names go-metro's subscription in workloadmeta's
// telemetry and `agent workload-list --verbose`.
const subscriberName = "go-metro"

func newWorkloads(store workloadmeta.Component, t tagger.Component) *workloads {
	if store == nil || t == nil {
		return nil
	}
	return &workloads{store: store, tagger: t, changed: make(chan struct{})}
}

// acquire subscribes on the first user. The store puts the entities it has
// in the channel before Subscribe returns (comp/core/workloadmeta/impl
// store.go: the first bundle, never waited for), so they are read here and
// an instance's capture opens with them.
func (w *workloads) acquire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.users++; w.users > 1 {
		return
	}
	filter := workloadmeta.NewFilterBuilder().
		AddKind(workloadmeta.KindContainer).
		AddKind(workloadmeta.KindKubernetesPod).
		Build()
	w.ch = w.store.Subscribe(subscriberName, workloadmeta.NormalPriority, filter)
	w.addrs, w.byAddr = map[workloadmeta.EntityID][]netip.Addr{}, map[netip.Addr]types.EntityID{}
	select {
	case b, ok := <-w.ch:
		if ok {
			w.handleLocked(b)
			b.Acknowledge()
		}
	default:
	}
	go w.follow(w.ch)
}

// release unsubscribes when the last user is gone, without holding mu:
// the store may be blocked handing follow a bundle, which follow takes
// (and drops) only once it has mu.
func (w *workloads) release() {
	w.mu.Lock()
	var ch chan workloadmeta.EventBundle
	if w.users--; w.users == 0 {
		ch, w.ch = w.ch, nil
	}
	w.mu.Unlock()
	if ch != nil {
		w.store.Unsubscribe(ch) // closes it: follow returns
	}
}

// follow handles the subscription's bundles until it is closed. Each is
// acknowledged once handled: the store waits for that before it notifies
// the next subscriber.
func (w *workloads) follow(ch chan workloadmeta.EventBundle) {
	for b := range ch {
		w.handle(ch, b)
		b.Acknowledge()
	}
}

// handle is the panic boundary of follow's goroutine, per bundle: a bug
// here must neither take the agent down nor stop the reading, since the
// store blocks handing a subscriber that stopped reading its next bundle.
func (w *workloads) handle(ch chan workloadmeta.EventBundle, b workloadmeta.EventBundle) {
	defer func() {
		if r := recover(); r != nil {
			_ = log.Errorf("go-metro: handling workload events panicked: %v\n%s", r, debug.Stack())
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == ch {
		w.handleLocked(b)
	}
}

func (w *workloads) handleLocked(b workloadmeta.EventBundle) {
	for _, ev := range b.Events {
		id := ev.Entity.GetID()
		if ev.Type == workloadmeta.EventTypeUnset {
			delete(w.addrs, id)
			continue
		}
		switch e := ev.Entity.(type) {
		case *workloadmeta.Container:
			w.addrs[id] = containerAddrs(e)
		case *workloadmeta.KubernetesPod:
			w.addrs[id] = podAddrs(e)
		}
	}
	w.indexLocked()
}

// containerAddrs are a running container's own addresses, one per network
// (Docker: `Network IPs: bridge:172.17.0.3`). A container in the host's
// network has none of its own (rttcheck also never takes an address of
// the host for a workload's).
func containerAddrs(c *workloadmeta.Container) []netip.Addr {
	if !c.State.Running {
		return nil
	}
	var out []netip.Addr
	for _, s := range c.NetworkIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// podAddrs is a pod's address, while it can have connections: a pod that
// finished (Succeeded, Failed) gives its address back to the node.
func podAddrs(p *workloadmeta.KubernetesPod) []netip.Addr {
	if p.Phase == "Succeeded" || p.Phase == "Failed" {
		return nil
	}
	if a, err := netip.ParseAddr(p.IP); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	return nil
}

// indexLocked maps each address to its workload. A pod's address is the
// pod's even when a container reports it too (its infrastructure
// container, under Docker); an address claimed by two containers or two
// pods is nobody's, since its connections cannot be told apart.
func (w *workloads) indexLocked() {
	owner := map[netip.Addr]workloadmeta.EntityID{}
	shared := map[netip.Addr]bool{}
	for id, addrs := range w.addrs {
		for _, a := range addrs {
			prev, dup := owner[a]
			switch {
			case !dup:
				owner[a] = id
			case prev.Kind == id.Kind:
				shared[a] = true
			case id.Kind == workloadmeta.KindKubernetesPod:
				owner[a] = id
			}
		}
	}
	byAddr := make(map[netip.Addr]types.EntityID, len(owner))
	for a, id := range owner {
		if shared[a] {
			continue
		}
		prefix := types.ContainerID
		if id.Kind == workloadmeta.KindKubernetesPod {
			prefix = types.KubernetesPodUID
		}
		byAddr[a] = types.NewEntityID(prefix, id.ID)
	}
	if !sameEntities(byAddr, w.byAddr) {
		w.byAddr = byAddr
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

func sameEntities(a, b map[netip.Addr]types.EntityID) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// Addrs implements rttcheck.Workloads.
func (w *workloads) Addrs() ([]netip.Addr, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]netip.Addr, 0, len(w.byAddr))
	for a := range w.byAddr {
		out = append(out, a)
	}
	return out, w.changed
}

// Lookup implements rttcheck.Workloads: the tagger's tags of the workload
// at a, the entity `agent tagger-list` shows (container_id://...,
// kubernetes_pod_uid://...), at the instance's tag_cardinality, else the
// agent's checks_tag_cardinality.
func (w *workloads) Lookup(a netip.Addr, card string) ([]string, bool) {
	w.mu.Lock()
	id, ok := w.byAddr[a]
	w.mu.Unlock()
	if !ok {
		return nil, false
	}
	c := checksCardinality(w.tagger)
	if card != "" {
		var err error
		if c, err = types.StringToTagCardinality(card); err != nil {
			return nil, true // rttcheck validated it: not reached
		}
	}
	tags, err := w.tagger.Tag(id, c)
	if err != nil {
		return nil, true
	}
	return tags, true
}

var _ rttcheck.Workloads = (*workloads)(nil)
