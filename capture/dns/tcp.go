package dns

// DNS over TCP prefixes each message with its length in two bytes (RFC 1035
// 4.2.2; RFC 7766 8). go-metro reads the answers a segment holds whole and
// does not reassemble one split across segments: WholeTCP accepts a payload
// made of whole messages only, back to back to its end, which a segment that
// continues or begins a split answer almost never is, so that its bytes are
// skipped rather than read as garbage.

// WholeTCP reports whether payload, one TCP segment's, is one or more
// length-prefixed messages filling it exactly.
func WholeTCP(payload []byte) bool {
	if len(payload) == 0 {
		return false
	}
	for len(payload) > 0 {
		if len(payload) < 2 {
			return false
		}
		n := 2 + int(be16(payload))
		if n > len(payload) {
			return false
		}
		payload = payload[n:]
	}
	return true
}

// NextTCP returns the first message of a payload WholeTCP accepted, and the
// messages after it.
func NextTCP(payload []byte) (msg, rest []byte) {
	n := 2 + int(be16(payload))
	return payload[2:n], payload[n:]
}
