package packet

import "errors"

// Status is what Decode made of a frame: OK, a TCP segment was decoded, or
// the reason it was not. It is not an error, so "decoded" can never pass for
// one: Err gives the error, nil for OK. The values are constants, so
// returning one never allocates, and callers count them by kind in arrays
// of NumStatuses.
type Status uint8

// Decode statuses. NotTCP is not malformed input, just traffic the engine
// ignores (ARP, UDP, ICMP, non-first fragments, ...).
const (
	OK              Status = iota
	NotTCP                 // valid, but no TCP segment the engine times
	Truncated              // captured bytes end before a header does
	BadHeader              // a length or version field is impossible
	UnsupportedLink        // link type the decoder does not know
	// DNS is a UDP datagram from port 53 outside any tunnel: a DNS message
	// (RFC 1035 4.2.1) for the caller to read through Packet.Payload, not
	// a TCP segment. Only SrcPort, DstPort and PayloadLen are set.
	DNS
	numStatuses
)

// NumStatuses is the number of Status values, for arrays of counters
// indexed by Status.
const NumStatuses = int(numStatuses)

// The errors Status.Err returns, one per status but OK.
var (
	ErrNotTCP          = errors.New("not a TCP segment")
	ErrTruncated       = errors.New("truncated packet")
	ErrBadHeader       = errors.New("malformed header")
	ErrUnsupportedLink = errors.New("unsupported link type")
	ErrDNS             = errors.New("a DNS datagram, not a TCP segment")
	errUnknown         = errors.New("unknown decode status")
)

var statusErrs = [numStatuses]error{nil, ErrNotTCP, ErrTruncated, ErrBadHeader, ErrUnsupportedLink, ErrDNS}

// Err is the decode failure s stands for, as an error: nil for OK.
func (s Status) Err() error {
	if int(s) < len(statusErrs) {
		return statusErrs[s]
	}
	return errUnknown
}

func (s Status) String() string {
	if s == OK {
		return "decoded"
	}
	return s.Err().Error()
}
