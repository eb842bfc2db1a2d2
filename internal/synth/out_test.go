package synth

import (
	"os"
	"testing"
)

// TestWriteCapture writes a capture for external tools (tshark, go-metro replay):
//
//	GOMETRO_SYNTH_OUT=/tmp/synth.pcap go test -run TestWriteCapture ./internal/synth/
//
// GOMETRO_SYNTH_PROFILE=small writes the Small profile instead of Realistic.
func TestWriteCapture(t *testing.T) {
	path := os.Getenv("GOMETRO_SYNTH_OUT")
	if path == "" {
		t.Skip("GOMETRO_SYNTH_OUT not set")
	}
	cfg := Realistic()
	if os.Getenv("GOMETRO_SYNTH_PROFILE") == "small" {
		cfg = Small()
	}
	c := Generate(cfg)
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	var retx, rretx, v6, noTS, resets, wraps int
	frames := map[FlowKind]int{}
	flows := map[FlowKind]int{}
	for _, fl := range c.Flows {
		retx += fl.Retransmits
		rretx += fl.RemoteRetransmits
		frames[fl.Kind] += fl.Frames
		flows[fl.Kind]++
		if fl.Local.Addr().Is6() {
			v6++
		}
		if !fl.Timestamps {
			noTS++
		}
		if fl.Reset {
			resets++
		}
		if fl.Wraps {
			wraps++
		}
	}
	for _, k := range []FlowKind{BulkSend, BulkRecv, ReqResp, Accept} {
		t.Logf("%-9v %4d flows %8d frames", k, flows[k], frames[k])
	}
	t.Logf("IPv6 %d, without timestamps %d, reset %d, wrapping %d", v6, noTS, resets, wraps)
	t.Logf("wrote %s: %d frames, %d flows, %.1f s of traffic, %d local and %d remote retransmissions",
		path, len(c.Frames), len(c.Flows), float64(c.Frames[len(c.Frames)-1].TS-c.Frames[0].TS)/1e9, retx, rretx)
}
