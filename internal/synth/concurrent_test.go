package synth

import (
	"bytes"
	"testing"
	"time"
)

// TestConcurrent: every connection makes its frames, with valid checksums,
// in capture order; its sequence numbers and ACKs line up (each ACK covers
// exactly what the other side sent before it); nothing is closed.
func TestConcurrent(t *testing.T) {
	cfg := ConcurrentConfig{Flows: PortsPerRemote + 7, Exchanges: 2, RTT: time.Millisecond}
	c := Concurrent(cfg)
	per := 3 + 3*cfg.Exchanges
	if len(c.Frames) != cfg.Flows*per {
		t.Fatalf("%d frames, want %d", len(c.Frames), cfg.Flows*per)
	}
	type side struct{ nxt uint32 }
	state := make([][2]side, cfg.Flows)
	for k, f := range c.Frames {
		if k > 0 && f.TS < c.Frames[k-1].TS {
			t.Fatalf("frame %d at %d before frame %d at %d", k, f.TS, k-1, c.Frames[k-1].TS)
		}
		d := decodeFrame(t, k, f)
		if k%997 == 0 && !checksumsOK(t, d) {
			t.Fatalf("frame %d: bad checksum", k)
		}
		fl := c.Flows[f.Flow]
		dir := 0
		switch {
		case d.src == fl.Local && d.dst == fl.Remote:
		case d.src == fl.Remote && d.dst == fl.Local:
			dir = 1
		default:
			t.Fatalf("frame %d: %v -> %v does not belong to flow %v-%v", k, d.src, d.dst, fl.Local, fl.Remote)
		}
		if d.tcp.FIN || d.tcp.RST {
			t.Fatalf("frame %d closes its connection", k)
		}
		st := &state[f.Flow]
		seq := d.tcp.Seq
		if d.tcp.SYN {
			st[dir].nxt = seq + 1
		} else if seq != st[dir].nxt {
			t.Fatalf("frame %d (flow %d, side %d): seq %d, want %d", k, f.Flow, dir, seq, st[dir].nxt)
		} else {
			st[dir].nxt += uint32(d.plen)
		}
		if d.tcp.ACK && d.tcp.Ack != st[1-dir].nxt {
			t.Fatalf("frame %d (flow %d, side %d): ack %d, want %d", k, f.Flow, dir, d.tcp.Ack, st[1-dir].nxt)
		}
	}
	for i, fl := range c.Flows {
		if fl.Frames != per {
			t.Fatalf("flow %d: %d frames, want %d", i, fl.Frames, per)
		}
	}
	if c.Flows[0].Remote == c.Flows[PortsPerRemote].Remote || c.Flows[0].Local != c.Flows[PortsPerRemote].Local {
		t.Fatalf("flows 0 and %d: %v-%v and %v-%v; want the same local end and different remotes",
			PortsPerRemote, c.Flows[0].Local, c.Flows[0].Remote, c.Flows[PortsPerRemote].Local, c.Flows[PortsPerRemote].Remote)
	}
	// Deterministic: the same config makes the same bytes.
	if again := Concurrent(cfg); !bytes.Equal(again.Buf, c.Buf) {
		t.Fatal("two captures of one config differ")
	}
}
