package rttcheck

import (
	"fmt"
	"net/netip"
)

// ReportOptions shape the per-host-pair metrics of an instance: how many
// series they make (dst grouping, a cap on host pairs, optional tags) and
// what the RTT distribution costs per run. The zero value reports as the
// check always did, with no distribution; DefaultReportOptions is what an
// instance gets.
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

// DefaultReportOptions are an instance's options when it sets none.
func DefaultReportOptions() ReportOptions {
	return ReportOptions{DistributionValues: DefaultDistributionValues}
}

// reportKeyParsers parse the instance keys of ReportOptions, one small
// function each; ReportKeys lists them for the documentation test.
var reportKeyParsers = map[string]func(o *ReportOptions, v interface{}) error{
	"group_dst_ipv4_prefix": func(o *ReportOptions, v interface{}) (err error) {
		o.DstPrefixV4, err = prefixBits(v, 32)
		return err
	},
	"group_dst_ipv6_prefix": func(o *ReportOptions, v interface{}) (err error) {
		o.DstPrefixV6, err = prefixBits(v, 128)
		return err
	},
	"max_host_pairs": func(o *ReportOptions, v interface{}) error {
		n, err := asInt(v)
		if err == nil && n < 0 {
			err = fmt.Errorf("%d is negative (0 means no cap)", n)
		}
		o.MaxHostPairs = n
		return err
	},
	"tag_dst_port": func(o *ReportOptions, v interface{}) (err error) {
		o.TagDstPort, err = asBool(v)
		return err
	},
	"tag_role": func(o *ReportOptions, v interface{}) (err error) {
		o.TagRole, err = asBool(v)
		return err
	},
	"rtt_distribution_values": func(o *ReportOptions, v interface{}) error {
		n, err := asInt(v)
		if err == nil && (n < 0 || n > MaxDistributionValues) {
			err = fmt.Errorf("%d is out of range 0..%d (0 turns the distribution off)", n, MaxDistributionValues)
		}
		o.DistributionValues = n
		return err
	},
}

// ReportKeys are the instance keys of ReportOptions.
var ReportKeys = []string{"group_dst_ipv4_prefix", "group_dst_ipv6_prefix", "max_host_pairs",
	"tag_dst_port", "tag_role", "rtt_distribution_values"}

// ParseReportKey applies one instance key to o. It reports whether key is
// a report option at all; the error names the key and where it is.
func ParseReportKey(o *ReportOptions, where, key string, v interface{}) (bool, error) {
	p, ok := reportKeyParsers[key]
	if !ok {
		return false, nil
	}
	if err := p(o, v); err != nil {
		return true, &ConfigError{Where: where, Key: key, Reason: err.Error()}
	}
	return true, nil
}

func prefixBits(v interface{}, max int) (int, error) {
	n, err := asInt(v)
	if err == nil && (n < 0 || n > max) {
		err = fmt.Errorf("%d is not a prefix length 0..%d (0 turns grouping off)", n, max)
	}
	return n, err
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
