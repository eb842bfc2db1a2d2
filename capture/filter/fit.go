package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gometro/go-metro/capture/packet"
	"golang.org/x/net/bpf"
)

// Level is how much of the requested match a kernel program checks. Each
// level accepts a superset of the frames the level before it accepts, so a
// coarser program never loses a monitored segment: it only lets more frames
// into the ring, which the engine's exact user-space check then discards
// (one copy and one flow-table miss per extra frame).
type Level uint8

const (
	// Exact checks the remotes and ports as requested.
	Exact Level = iota
	// Aggregated checks the ports and the remote prefixes shortened (see
	// aggregateSteps) and merged.
	Aggregated
	// PortsOnly checks the ports; any remote passes.
	PortsOnly
	// TCPOnly checks that the frame is TCP; any remote and port pass. Its
	// program is the same few dozen instructions whatever was asked, so it
	// always fits.
	TCPOnly
)

var levelNames = [...]string{Exact: "exact", Aggregated: "aggregated remote prefixes", PortsOnly: "ports only", TCPOnly: "TCP only"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level %d", uint8(l))
}

// aggregateSteps are the prefix lengths the Aggregated level shortens remote
// prefixes to, finest first: a /24 or /64 is what one site or one host's
// subnet usually spans, so addresses of one service tend to share them, and
// every step also cuts the cost of an IPv6 prefix (one 32-bit word compared
// fewer per step from /64 on).
var aggregateSteps = []struct{ v4, v6 int }{{24, 64}, {16, 48}, {8, 32}}

// Program is a kernel filter and what it checks.
type Program struct {
	Instructions []bpf.RawInstruction
	Level        Level
	// Remotes and Ports are what the program checks (nil: any). At
	// Aggregated, Remotes are the shortened, merged prefixes.
	Remotes []netip.Prefix
	Ports   []uint16
	// Reason says why a finer level was not used: the ErrTooLarge or the
	// attach error of the level before. nil at Exact.
	Reason error
}

// Fit installs the finest program for remotes and ports that the kernel
// takes: Build's exact program, else the Aggregated steps, PortsOnly and
// TCPOnly, in that order, each with what pass asks let through: the outer
// packets of its tunnels (WithTunnels) and DNS answers (WithDNS). A level
// whose program exceeds
// MaxInstructions is skipped; attach (nil: none) installs a program, and a level it refuses is
// skipped too: the kernel refuses programs that fit the instruction limit
// but not the socket's option memory (net.core.optmem_max, ENOMEM). Fit
// returns the installed program, an error for invalid arguments (as Build),
// or, when every level was refused, the refusals joined.
//
// Program size, in instructions (measured, Ethernet; raw IP is 34 fewer):
// 87 for TCPOnly; ports add 2 + 4 per port; remotes add about 2 per address
// family, then 6 per IPv4 prefix (8 if shorter than /32) and, per IPv6
// prefix, 2 x (1 + 2 per 32-bit word compared, 3 for a partial word): 18
// for a /128, 12 for a /48, 10 for a /64, 6 for a /32. So about 220 IPv6
// hosts or 660 IPv4 hosts fit exactly; 400 IPv6 /64s and 680 /32s fit.
func Fit(link packet.LinkType, remotes []netip.Prefix, ports []uint16, snaplen int, pass Pass,
	attach func([]bpf.RawInstruction) error) (Program, error) {
	var refused []error
	var reason error
	for c := range candidates(remotes, ports) {
		ins, err := Build(link, c.Remotes, c.Ports, snaplen)
		if err == nil {
			ins, err = WithTunnels(ins, link, pass.Tunnels, snaplen)
		}
		if err == nil && pass.DNS {
			ins, err = WithDNS(ins, link, snaplen)
		}
		if errors.Is(err, ErrTooLarge) {
			reason = err
			continue
		}
		if err != nil {
			return Program{}, err
		}
		if attach != nil {
			if err := attach(ins); err != nil {
				err = fmt.Errorf("the %s filter was refused: %w", c.Level, err)
				refused = append(refused, err)
				reason = err
				continue
			}
		}
		c.Instructions, c.Reason = ins, reason
		return c, nil
	}
	return Program{}, fmt.Errorf("filter: the kernel refused every filter level: %w", errors.Join(refused...))
}

// candidates yields the levels Fit tries, finest first, each once: a step
// that changes nothing (remotes already short) is left out.
func candidates(remotes []netip.Prefix, ports []uint16) func(yield func(Program) bool) {
	return func(yield func(Program) bool) {
		if !yield(Program{Level: Exact, Remotes: remotes, Ports: ports}) {
			return
		}
		if len(remotes) > 0 {
			prev := remotes
			for _, s := range aggregateSteps {
				agg := aggregate(remotes, s.v4, s.v6)
				if slices.Equal(agg, prev) {
					continue
				}
				prev = agg
				if !yield(Program{Level: Aggregated, Remotes: agg, Ports: ports}) {
					return
				}
			}
			if len(ports) > 0 && !yield(Program{Level: PortsOnly, Ports: ports}) {
				return
			}
		}
		if len(remotes) > 0 || len(ports) > 0 {
			yield(Program{Level: TCPOnly})
		}
	}
}

// aggregate shortens every prefix to at most v4 (IPv4) or v6 (IPv6) bits and
// drops those another one covers, so that the result matches every address
// the input matches, in fewer and cheaper comparisons.
func aggregate(remotes []netip.Prefix, v4, v6 int) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(remotes))
	for _, p := range remotes {
		p = normalize(p)
		bits := v6
		if p.Addr().Is4() {
			bits = v4
		}
		if p.Bits() > bits {
			p = netip.PrefixFrom(p.Addr(), bits).Masked()
		}
		out = append(out, p)
	}
	// Sorted by address, then by length, a prefix comes before every prefix
	// it covers: one pass keeping the last kept prefix drops them all.
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	kept := out[:0]
	for _, p := range out {
		if n := len(kept); n > 0 && kept[n-1].Bits() <= p.Bits() && kept[n-1].Contains(p.Addr()) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// normalize masks p and turns an IPv4-mapped IPv6 prefix into its IPv4
// prefix, as the filter compares IPv4 headers against IPv4 prefixes.
func normalize(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// Describe is a one-line account of a program for warnings: its level and,
// when coarser than exact, why.
func (p Program) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d instructions", p.Level, len(p.Instructions))
	if p.Level == Aggregated {
		fmt.Fprintf(&b, ", remote prefixes: %d", len(p.Remotes))
	}
	b.WriteString(")")
	if p.Reason != nil {
		fmt.Fprintf(&b, ": %v", p.Reason)
	}
	return b.String()
}
