package rttcheck

import "net/netip"

// ReportOptions shape the per-host-pair metrics of an instance: how many
// series they make (dst grouping, a cap on host pairs, optional tags) and
// what the RTT distribution costs per run. They come from the instance keys
// group_dst_ipv4_prefix, group_dst_ipv6_prefix, max_host_pairs,
// tag_dst_port, tag_role and rtt_distribution_values; the zero value
// reports as the check always did, with no distribution.
type ReportOptions struct {
	// DstPrefixV4 and DstPrefixV6 group remote addresses that are not a
	// configured host by network: dst is the prefix ("10.1.2.0/24"). 0
	// keeps one dst per address.
	DstPrefixV4, DstPrefixV6 int
	// MaxHostPairs caps the series of an instance: the first MaxHostPairs
	// (src, dst, dst_port, role) combinations keep their own tags for as
	// long as they have flows; later ones are reported with dst:other. 0:
	// no cap.
	MaxHostPairs int
	// TagDstPort adds dst_port:N (the remote port); TagRole adds
	// role:client (we opened the connection) or role:server (the peer
	// did; connections whose handshake was not seen have no role tag).
	TagDstPort, TagRole bool
	// DistributionValues is the most RTT values sent per series and run
	// as system.net.tcp.rtt.distribution; 0 turns the distribution off.
	DistributionValues int
}

// Limits and defaults of the report options.
const (
	// DefaultDistributionValues: 128 values per host pair and run, drawn
	// uniformly from the pair's samples (see distribution.go), keep the
	// median exact to a few percent of rank per run and, over the four
	// runs of a minute (512 values), the p99 within about +-0.4 of a
	// percentile; over an hour or across hosts any percentile is sharp.
	// At most 128 Distribution calls per pair and run, whatever the rate.
	DefaultDistributionValues = 128
	// MaxDistributionValues bounds the per-run cost a typo can ask for.
	MaxDistributionValues = 4096
	// OtherDst is the dst tag of host pairs beyond max_host_pairs.
	OtherDst = "other"
)

// reportOptions are the instance's series options.
func (in *InstanceConfig) reportOptions() ReportOptions {
	return ReportOptions{
		DstPrefixV4: in.GroupDstIPv4Prefix, DstPrefixV6: in.GroupDstIPv6Prefix,
		MaxHostPairs: in.MaxHostPairs, TagDstPort: in.TagDstPort, TagRole: in.TagRole,
		DistributionValues: in.RTTDistributionValues,
	}
}

// groupDst returns the network of a when the options group it, and
// whether they do.
func (o *ReportOptions) groupDst(a netip.Addr) (netip.Prefix, bool) {
	bits := o.DstPrefixV6
	if a.Is4() {
		bits = o.DstPrefixV4
	}
	if bits == 0 {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}
