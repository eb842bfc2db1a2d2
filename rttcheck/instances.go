package rttcheck

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/source"
)

// MaxReservedBytes caps the memory that the instances of one go-metro
// process (the standalone binary's file, or the agent's instances of the
// check) may reserve together: each reserves its flow tables
// (flow.ReservedBytes of max_flows, split among its capture workers) and,
// live, its kernel capture rings (capture_buffer_mb, or the most a ring
// sized by need grows to). Without it, a configuration that repeats an
// instance by the thousand grows until the host runs out of memory, with
// no message. 2 GiB is 10 live instances at the defaults.
const MaxReservedBytes = 2 << 30

// ReservedBytes is what the instance can come to hold: its flow table full
// and its capture ring at its largest.
func (c *Config) ReservedBytes() int64 {
	workers := max(c.Instance.Workers, 1)
	n := int64(workers) * flow.ReservedBytes((c.Init.MaxFlows+workers-1)/workers)
	return n + c.ringBytesLive()
}

// ringBytesLive is ringBytes for a live instance, 0 for a replay.
func (c *Config) ringBytesLive() int64 {
	if c.Instance.Interface == FileInterface {
		return 0
	}
	return c.ringBytes()
}

// ringBytes is the most ring the instance holds: every worker's.
func (c *Config) ringBytes() int64 {
	workers := int64(max(c.Instance.Workers, 1))
	switch {
	case c.Instance.BufferMB > 0:
		return workers * int64(c.Instance.BufferMB) << 20
	case workers > 1:
		return workers * int64(source.FanoutRingSize(int(workers)))
	}
	return source.DefaultRingSize
}

// reservation says what ReservedBytes is made of, for messages.
func (c *Config) reservation() string {
	s := fmt.Sprintf("flow table of max_flows %d %s", c.Init.MaxFlows, mib(c.ReservedBytes()-c.ringBytesLive()))
	if c.Instance.Interface != FileInterface {
		s = fmt.Sprintf("capture ring %d MiB + %s", c.ringBytes()>>20, s)
	}
	return fmt.Sprintf("%s (%s)", mib(c.ReservedBytes()), s)
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", (n+(1<<20)-1)>>20) }

// CaptureKey is what an instance captures: its interface (or replayed
// file), backend and the keys of its filter. Two instances with one key
// would capture and time the same packets twice, for twice the memory.
func (c *Config) CaptureKey() string {
	in := &c.Instance
	var b strings.Builder
	if in.Interface == FileInterface {
		fmt.Fprintf(&b, "pcap %s", in.Pcap)
	} else {
		fmt.Fprintf(&b, "interface %s", in.Interface)
	}
	if in.Backend != "" {
		fmt.Fprintf(&b, ", capture_backend %s", in.Backend)
	}
	if in.AllRemoteHosts {
		b.WriteString(", all_remote_hosts")
	}
	list := func(key string, items []string) {
		if len(items) > 0 {
			slices.Sort(items)
			items = slices.Compact(items)
			fmt.Fprintf(&b, ", %s [%s]", key, strings.Join(items, " "))
		}
	}
	var ips, ports []string
	for _, p := range in.IPs {
		ips = append(ips, p.String())
	}
	for _, p := range in.Ports {
		ports = append(ports, fmt.Sprint(p))
	}
	list("ips", ips)
	list("hosts", slices.Clone(in.Hosts))
	list("ports", ports)
	if in.Tunnels != 0 {
		fmt.Fprintf(&b, ", tunnels %v", in.Tunnels)
	}
	return b.String()
}

// CheckInstances applies the rules between the instances of one file: no
// two with the same CaptureKey, and at most MaxReservedBytes in all. The
// error names the instances by their position in the file's list.
func CheckInstances(cfgs []*Config) error {
	seen := map[string]int{}
	var total int64
	for i, c := range cfgs {
		k := c.CaptureKey()
		if j, dup := seen[k]; dup {
			return &ConfigError{Where: fmt.Sprintf("instances[%d]", i), Key: "interface",
				Reason: fmt.Sprintf("captures what instances[%d] captures (%s): remove one, or give them different ips, hosts or ports", j, truncate(k))}
		}
		seen[k] = i
		total += c.ReservedBytes()
		if total > MaxReservedBytes {
			return &ConfigError{Where: fmt.Sprintf("instances[%d]", i),
				Reason: fmt.Sprintf("instances[0..%d] reserve %s, over the %s that one go-metro may reserve (each: %s): lower max_flows or capture_buffer_mb, or use fewer instances (interface: any captures them all)",
					i, mib(total), mib(MaxReservedBytes), c.reservation())}
		}
	}
	return nil
}

// active is the process-wide registry of the instances that run: inside
// the agent each instance is configured on its own, so only the process
// can see a second identical one, or the sum of what they reserve.
var active = struct {
	sync.Mutex
	keys  map[string]*Check
	total int64
}{keys: map[string]*Check{}}

// claim registers c's capture, or says why it may not run.
func (c *Check) claim(cfg *Config) error {
	key, bytes := cfg.CaptureKey(), cfg.ReservedBytes()
	active.Lock()
	defer active.Unlock()
	where := instanceName(cfg.Instance.Interface, -1)
	if _, dup := active.keys[key]; dup {
		return &ConfigError{Where: where, Key: "interface",
			Reason: fmt.Sprintf("another go-metro instance already captures this (%s): remove the duplicate, or give it different ips, hosts or ports", truncate(key))}
	}
	if active.total+bytes > MaxReservedBytes {
		return &ConfigError{Where: where,
			Reason: fmt.Sprintf("it reserves %s and the %d instances running reserve %s: over the %s that one go-metro may reserve; lower max_flows or capture_buffer_mb, or use fewer instances",
				cfg.reservation(), len(active.keys), mib(active.total), mib(MaxReservedBytes))}
	}
	active.keys[key] = c
	active.total += bytes
	return nil
}

// release unregisters c's capture, if it has one.
func (c *Check) release(cfg *Config) {
	key := cfg.CaptureKey()
	active.Lock()
	defer active.Unlock()
	if active.keys[key] == c {
		delete(active.keys, key)
		active.total -= cfg.ReservedBytes()
	}
}
