package packet

// Error is a decode failure class. The values are constants so that
// returning one never allocates, and callers can count them by kind.
type Error uint8

// Decode failure classes. ErrNotTCP is not malformed input, just traffic the
// engine ignores (ARP, UDP, ICMP, non-first fragments, ...).
const (
	ErrNone Error = iota
	ErrNotTCP
	ErrTruncated       // captured bytes end before a header does
	ErrBadHeader       // a length or version field is impossible
	ErrUnsupportedLink // link type the decoder does not know
	numErrors
)

// NumErrorKinds is the number of Error values, for arrays of counters indexed by Error.
const NumErrorKinds = int(numErrors)

func (e Error) Error() string {
	switch e {
	case ErrNone:
		return "no error"
	case ErrNotTCP:
		return "not a TCP segment"
	case ErrTruncated:
		return "truncated packet"
	case ErrBadHeader:
		return "malformed header"
	case ErrUnsupportedLink:
		return "unsupported link type"
	}
	return "unknown decode error"
}
