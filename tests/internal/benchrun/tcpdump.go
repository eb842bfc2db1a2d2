package benchrun

import (
	"context"
	"regexp"
	"strconv"
	"time"
)

// TcpdumpSummary is what tcpdump prints on its way out; -1 where a line
// is missing.
type TcpdumpSummary struct {
	Captured, Received, Dropped int64 // "packets captured", "received by filter", "dropped by kernel"
}

var tcpdumpLine = regexp.MustCompile(`(\d+) packets (captured|received by filter|dropped by kernel)`)

// ParseTcpdumpSummary reads tcpdump's summary lines from its output.
func ParseTcpdumpSummary(out string) TcpdumpSummary {
	s := TcpdumpSummary{-1, -1, -1}
	for _, m := range tcpdumpLine.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		switch m[2] {
		case "captured":
			s.Captured = n
		case "received by filter":
			s.Received = n
		default:
			s.Dropped = n
		}
	}
	return s
}

// Sleep waits d, and reports false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
