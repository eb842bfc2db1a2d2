package rttcheck

import (
	"context"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gometro/go-metro/capture/localaddr"
)

// Workloads is what the host program knows of the containers and pods of
// this host. Inside the agent it is the agent's workload metadata and
// tagger (module check/); the standalone binary has none (nil).
//
// A workload's address counts as local, as the interface's own do: its
// connections are timed from its side. And the series carry its tags: a
// local end's under the agent's own names (kube_service:checkout selects
// the same workload as every other agent metric does), a remote end's
// with the dst_ prefix (dst_kube_service:checkout).
type Workloads interface {
	// Addrs returns the addresses of this host's running containers and
	// pods, and a channel closed when they next change (nil: never told,
	// the check re-reads them every workloadRecheck).
	Addrs() (addrs []netip.Addr, changed <-chan struct{})
	// Lookup returns the tags of the workload whose address is a, at tag
	// cardinality card (one of TagCardinalities; "" is the agent's
	// checks_tag_cardinality), and whether a is a workload's.
	Lookup(a netip.Addr, card string) (tags []string, ok bool)
}

// TagCardinalities are the values of tag_cardinality, the agent's tagger
// levels (comp/core/tagger/types: low, orchestrator, high, none).
var TagCardinalities = []string{"low", "orchestrator", "high", "none"}

// workloadRecheck is how often the workload addresses are read again even
// without a change notice: the host's own addresses, which are never a
// workload's, change without one.
var workloadRecheck = 30 * time.Second

// hostAddrs lists the host's own addresses (Check.hostAddrs; tests
// substitute it).
func hostAddrs() ([]netip.Addr, error) { return localaddr.InterfaceAddrs("") }

// watchWorkloads keeps the workload addresses current for the life of the
// check; Configure has read them once already.
func (c *Check) watchWorkloads(ctx context.Context, changed <-chan struct{}) {
	for {
		t := time.NewTimer(workloadRecheck)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		changed = c.refreshWorkloads()
	}
}

// readWorkloads returns the workload addresses, sorted, and the channel
// that tells their next change. An address of the host itself is never a
// workload's: a host-network container or pod reports the host's address,
// and the host's connections are not its.
func (c *Check) readWorkloads() ([]netip.Addr, <-chan struct{}) {
	addrs, changed := c.opts.Workloads.Addrs()
	host, _ := c.hostAddrs()
	set := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a = a.Unmap().WithZone(""); a.IsValid() && !slices.Contains(host, a) {
			set = append(set, a)
		}
	}
	slices.SortFunc(set, netip.Addr.Compare)
	return slices.Compact(set), changed
}

// refreshWorkloads reads the workload addresses, publishes them and pushes
// them to the engine as local addresses when they changed.
func (c *Check) refreshWorkloads() (changed <-chan struct{}) {
	set, changed := c.readWorkloads()
	var eng engine
	var diff bool
	c.update(func(s *status) {
		if diff = !slices.Equal(set, s.workloads); diff {
			s.workloads = set
		}
		eng = s.eng
	})
	if !diff {
		return changed
	}
	c.log.Debugf("go-metro: %d container and pod addresses count as local on %s", len(set), c.cfg.Instance.Interface)
	if eng != nil {
		if err := eng.SetLocalIPs(localPrefixes(c.cfg.Instance.LocalIPs, set)); err != nil {
			c.log.Warnf("go-metro: updating the workload addresses on %s: %v", c.cfg.Instance.Interface, err)
		}
	}
	return changed
}

// localPrefixes is the engine's LocalIPs: local_ips plus the workloads'.
func localPrefixes(configured []netip.Prefix, workloads []netip.Addr) []netip.Prefix {
	out := append(make([]netip.Prefix, 0, len(configured)+len(workloads)), configured...)
	for _, a := range workloads {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// workloadEnd is one end of a series that is a workload: the name its
// src or dst tag takes, and its tags as sent (a remote end's with the
// dst_ prefix). Flows keep the ends they were first reported with.
type workloadEnd struct {
	name string
	tags []string // sorted
	key  string   // tags joined: two ends with the same tags are one series end
}

// workloadNameTags are, in order, the tags whose value names a workload
// end (its src or dst value): the most specific the cardinality keeps.
// A Docker container is its container_name at high cardinality (a
// high-cardinality tag), else its short_image; a pod its pod_name at
// orchestrator and high, else its owner (deployment, ...), else its
// service. An end with tags but none of these keeps its address.
var workloadNameTags = []string{
	"container_name", "pod_name",
	"kube_deployment", "kube_statefulset", "kube_daemonset", "kube_cronjob", "kube_job",
	"kube_replica_set", "kube_replication_controller", "kube_service",
	"ecs_container_name", "short_image", "image_name",
}

// seriesTagKeys are the tags go-metro itself puts on a host pair's series:
// a workload's tag of the same name is left out, never sent beside ours
// (a pod labelled role:frontend would otherwise read as tag_role's).
var seriesTagKeys = []string{"src", "dst", "dst_port", "role", "iface", "tunnel"}

// DstTagPrefix is what a remote workload's tag names are prefixed with.
const DstTagPrefix = "dst_"

// newWorkloadEnd names a workload end from its tags; remote ends' tags are
// prefixed. It returns nil when no tag is left (cardinality none).
func newWorkloadEnd(addr netip.Addr, tags []string, remote bool) *workloadEnd {
	out := make([]string, 0, len(tags))
	values := map[string]string{}
	for _, t := range tags {
		k, v, _ := strings.Cut(t, ":")
		if remote {
			k, t = DstTagPrefix+k, DstTagPrefix+t
		} else if strings.HasPrefix(k, DstTagPrefix) {
			continue // would read as the remote end's
		}
		if slices.Contains(seriesTagKeys, k) || slices.Contains(out, t) {
			continue
		}
		out = append(out, t)
		if _, ok := values[k]; !ok {
			values[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	e := &workloadEnd{name: addr.String(), tags: out, key: strings.Join(out, "\x00")}
	for _, k := range workloadNameTags {
		if remote {
			k = DstTagPrefix + k
		}
		if v := values[k]; v != "" {
			e.name = v
			break
		}
	}
	return e
}

// workloadEnds names the workload ends of one Run, each address once per
// role, from the workload set the Run started with.
type workloadEnds struct {
	w     Workloads
	card  string
	set   []netip.Addr // sorted
	ends  [2]map[netip.Addr]*workloadEnd
	known [2]map[netip.Addr]bool
}

func (c *Check) newWorkloadEnds(set []netip.Addr) *workloadEnds {
	if c.opts.Workloads == nil || len(set) == 0 || c.cfg.Instance.TagCardinality == "none" {
		return nil
	}
	return &workloadEnds{w: c.opts.Workloads, card: c.cfg.Instance.TagCardinality, set: set}
}

// end returns the workload end at a in its role (remote: the dst end), or
// nil when a is no workload's or its workload has no tags.
func (we *workloadEnds) end(a netip.Addr, remote bool) *workloadEnd {
	if we == nil {
		return nil
	}
	if _, found := slices.BinarySearchFunc(we.set, a, netip.Addr.Compare); !found {
		return nil
	}
	i := 0
	if remote {
		i = 1
	}
	if we.known[i] == nil {
		we.known[i], we.ends[i] = map[netip.Addr]bool{}, map[netip.Addr]*workloadEnd{}
	}
	if !we.known[i][a] {
		we.known[i][a] = true
		if tags, ok := we.w.Lookup(a, we.card); ok {
			we.ends[i][a] = newWorkloadEnd(a, tags, remote)
		}
	}
	return we.ends[i][a]
}
