package rttcheck

import (
	"reflect"
	"testing"

	"github.com/gometro/go-metro/capture"
	"github.com/gometro/go-metro/capture/flow"
	"github.com/gometro/go-metro/capture/packet"
)

// TestRunTunnelTags: series of tunnelled flows carry one tunnel:NAME tag per
// encapsulation; flows of one host pair in the same encapsulations are one
// series whatever their VNI; bare flows of the pair stay a series of their
// own. The tunnels key reaches the engine.
func TestRunTunnelTags(t *testing.T) {
	vni := func(id uint32) flow.TunnelKey {
		return flow.TunnelKey{Encaps: packet.EncapVXLAN, IDOf: packet.EncapVXLAN, ID: id}
	}
	e := est(3, 10*msNS, 10*msNS, 10*msNS, 10*msNS, msNS, 1000)
	fe := &fakeEngine{snap: capture.Snapshot{Flows: []flow.Summary{
		{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), RTT: e, FirstSeen: 1, Tunnel: vni(1)},
		{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), RTT: e, FirstSeen: 1, Tunnel: vni(2)},
		{Local: ap("10.0.0.1:40001"), Remote: ap("10.0.0.2:443"), RTT: e, FirstSeen: 2},
		{Local: ap("10.0.0.1:40002"), Remote: ap("10.0.0.2:443"), RTT: e, FirstSeen: 3,
			Tunnel: flow.TunnelKey{Encaps: packet.EncapGRE | packet.EncapERSPAN, IDOf: packet.EncapERSPAN, ID: 7}},
	}}}
	c := newTestCheck(t, Options{}, "interface: eth0\nips: [10.0.0.0/24]\nreverse_dns: false\ntunnels: [vxlan, erspan]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	r := runOnce(t, c)
	base := []string{"src:10.0.0.1", "dst:10.0.0.2", "iface:eth0"}
	want := map[string]float64{ // tag set -> samples
		"":                         3,
		"tunnel:vxlan":             6,
		"tunnel:gre tunnel:erspan": 3,
	}
	got := map[string]float64{}
	for _, s := range r.find(MetricRTTSamples) {
		if !reflect.DeepEqual(s.tags[:3], base) {
			t.Fatalf("unexpected tags %v", s.tags)
		}
		k := ""
		for i, tag := range s.tags[3:] {
			if i > 0 {
				k += " "
			}
			k += tag
		}
		got[k] += s.value
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("samples by tunnel tags %v, want %v", got, want)
	}
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if fe.cfg.Tunnels != packet.EncapVXLAN|packet.EncapERSPAN {
		t.Fatalf("engine tunnels %v, want vxlan+erspan", fe.cfg.Tunnels)
	}
}
