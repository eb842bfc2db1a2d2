package rttcheck

// The names of everything the check submits, in one place: metadata.csv
// documents each metric (assets_test.go holds the two to each other), and
// the dashboards and monitors under assets/ refer to them.

// ServiceCheckName is the service check telling whether capture runs.
const ServiceCheckName = "go_metro.can_capture"

// Metric names. RTT gauges are in milliseconds.
const (
	MetricRTT          = "system.net.tcp.rtt"
	MetricRTTAvg       = "system.net.tcp.rtt.avg"
	MetricRTTJitter    = "system.net.tcp.rtt.jitter"
	MetricRTTMin       = "system.net.tcp.rtt.min"
	MetricRTTMax       = "system.net.tcp.rtt.max"
	MetricRTTSamples   = "system.net.tcp.rtt.samples"
	MetricPackets      = "go_metro.packets"
	MetricKernelDrops  = "go_metro.kernel.drops"
	MetricDecodeErrors = "go_metro.decode_errors"
	MetricFlowsTracked = "go_metro.flows.tracked"
	MetricFlowsEvicted = "go_metro.flows.evicted"
	// MetricRingsDenied counts the times a flow needed a full-size ring
	// block (a large flight, a busy connection) and its table's pool had
	// none left: it kept timing within its small rings, coarser
	// (capture/flow/rings.go). The pools are a sixteenth and a quarter of
	// max_flows, so that memory stays bounded by the configuration.
	MetricRingsDenied = "go_metro.flows.rings_denied"
	// MetricCapturePanics counts capture engine panics recovered; after
	// each, capture restarts on a fresh engine and flow table.
	MetricCapturePanics = "go_metro.capture.panics"
	// MetricRingSize is the bytes of kernel capture ring in use, all of it
	// resident: it grows with the traffic up to capture_buffer_mb.
	MetricRingSize = "go_metro.capture.ring_size"
	// MetricDNSMalformed counts the DNS answers that did not parse
	// (skipped); MetricDNSNames is the addresses the DNS name cache holds.
	// Both are sent with dns_names only.
	MetricDNSMalformed = "go_metro.dns.malformed"
	MetricDNSNames     = "go_metro.dns.names"
)

// Per-host-pair connection health and timing. Counts are increases since
// the previous run; each connection event counts once per connection.
const (
	MetricRTTDistribution = "system.net.tcp.rtt.distribution"
	MetricRTTHandshake    = "system.net.tcp.rtt.handshake"
	MetricResponseTime    = "system.net.tcp.response_time"
	MetricRetransmits     = "system.net.tcp.flow.retransmits"
	MetricOpened          = "system.net.tcp.flow.opened"
	MetricClosed          = "system.net.tcp.flow.closed"
	MetricReset           = "system.net.tcp.flow.reset"
	MetricRefused         = "system.net.tcp.flow.refused"
	MetricSYNTimeouts     = "system.net.tcp.flow.syn_timeouts"
	MetricZeroWinRemote   = "system.net.tcp.flow.zero_window.remote"
	MetricZeroWinLocal    = "system.net.tcp.flow.zero_window.local"
	MetricDuplicates      = "go_metro.packets.duplicate"
)
