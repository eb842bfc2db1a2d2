package rttcheck

import (
	"cmp"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/filter"
	"github.com/gometro/go-metro/capture/packet"
	"github.com/gometro/go-metro/capture/source"
)

// Inventory is the instance's inventory metadata (`metadata:` lines of
// `agent status`, carried in flares): what was configured and what the
// capture really uses, as strings because the agent shows only strings.
// It is meant to be re-sent on every Run, as the kernel filter grows or
// shrinks when hosts re-resolve.
func (c *Check) Inventory() (m map[string]string) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Errorf("go-metro: inventory panicked: %v\n%s", r, debug.Stack())
			m = nil
		}
	}()
	st := c.diagState(0)
	if st.cfg == nil {
		return nil
	}
	in, ini := &st.cfg.Instance, &st.cfg.Init
	m = map[string]string{
		"version":         Version,
		"interface":       in.Interface,
		"capture.backend": backendName(in),
		"snaplen":         strconv.Itoa(capture.Snaplen(ini.Snaplen)), // what the engine uses: it caps larger values
		"max_flows":       strconv.Itoa(ini.MaxFlows),
	}
	if c.opts.Workloads != nil {
		// The agent's containers and pods (workloads.go), and the
		// cardinality of their tags ("agent": checks_tag_cardinality).
		m["workloads"] = strconv.Itoa(len(st.workloads))
		m["tag_cardinality"] = cmp.Or(in.TagCardinality, "agent")
	}
	if in.Interface == FileInterface {
		m["pcap"] = in.Pcap
		return m
	}
	m["capture.workers"] = strconv.Itoa(in.Workers)
	m["capture.nice"] = strconv.Itoa(in.Nice)
	ring := in.BufferMB << 20
	switch {
	case ring == 0 && in.Workers > 1:
		ring = source.FanoutRingSize(in.Workers) // fixed
	case ring == 0:
		ring = source.DefaultRingSize
	}
	// All the workers' rings: capture_buffer_mb fixes each; sized by need
	// (one worker) it starts at 4 MiB (go_metro.capture.ring_size).
	m["ring_size.max"] = strconv.Itoa(ring * in.Workers)
	m["dns_names"] = strconv.FormatBool(in.DNSNames)
	if len(st.remotes) == 0 && len(in.Ports) == 0 {
		m["filter.instructions"] = "none"
		if in.DNSNames {
			// Every frame up to snaplen, and DNS answers whole.
			if prog, err := filter.WithDNS(nil, filterLinkType(in.Interface), capture.Snaplen(ini.Snaplen)); err == nil {
				m["filter.instructions"] = strconv.Itoa(len(prog))
			}
		}
		return m
	}
	prog, err := c.plan.get(in, st.remotes, ini.Snaplen)
	if err != nil {
		m["filter.instructions"] = "none: " + err.Error()
		return m
	}
	m["filter.instructions"] = strconv.Itoa(len(prog.Instructions))
	m["filter.level"] = prog.Level.String()
	return m
}

// plannedFilter is the program the capture would install for in on its
// interface when it opens (filter.Fit with no kernel to refuse a
// level): the diagnosis and the inventory before capture runs.
func plannedFilter(in *InstanceConfig, remotes []netip.Prefix, snaplen int) (filter.Program, error) {
	pass := filter.Pass{Tunnels: in.Tunnels, DNS: in.DNSNames}
	return filter.Fit(filterLinkType(in.Interface), remotes, in.Ports, capture.Snaplen(snaplen), pass, nil)
}

// filterPlan keeps Inventory's plannedFilter between runs: Inventory is
// sent on every Run, and building every level's program again each time
// (thousands of instructions each) is work for nothing while the remotes,
// the program's only input that changes after Configure, stay the same
// (a re-resolve replaces the slice).
type filterPlan struct {
	mu      sync.Mutex
	remotes []netip.Prefix
	prog    filter.Program
	err     error
	made    bool
}

func (p *filterPlan) get(in *InstanceConfig, remotes []netip.Prefix, snaplen int) (filter.Program, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.made || !slices.Equal(p.remotes, remotes) {
		p.prog, p.err = plannedFilter(in, remotes, snaplen)
		p.remotes, p.made = remotes, true
	}
	return p.prog, p.err
}

// filterLinkType is the framing the afpacket source delivers on iface,
// which the filter's length depends on.
func filterLinkType(iface string) packet.LinkType {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		ifi = nil // "any", or gone: IP packets
	}
	return source.AFPacketLinkType(ifi)
}
