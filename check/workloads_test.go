//go:build test

package gometro

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/comp/core/config"
	logdef "github.com/DataDog/datadog-agent/comp/core/log/def"
	logimpl "github.com/DataDog/datadog-agent/comp/core/log/impl"
	taggermock "github.com/DataDog/datadog-agent/comp/core/tagger/mock"
	"github.com/DataDog/datadog-agent/comp/core/tagger/types"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
	wmfx "github.com/DataDog/datadog-agent/comp/core/workloadmeta/fx-mock"
	wmmock "github.com/DataDog/datadog-agent/comp/core/workloadmeta/mock"
	"github.com/DataDog/datadog-agent/pkg/aggregator/mocksender"
	"github.com/DataDog/datadog-agent/pkg/util/fxutil"
	"github.com/stretchr/testify/mock"

	"github.com/gometro/go-metro/rttcheck"
)

// Kubernetes cannot run where go-metro is tested: the pod path goes through
// the agent's own workloadmeta mock (its real store, fed by Set) and tagger
// mock, as the kubelet collector and the tagger would fill them.

// newWorkloadmetaMock is the agent's workloadmeta mock (fx-mock).
func newWorkloadmetaMock(t *testing.T, cfg config.Component) wmmock.Mock {
	return fxutil.Test[wmmock.Mock](t, fx.Options(
		fx.Provide(func() logdef.Component { return logimpl.NewTemporaryLoggerWithoutInit() }),
		fx.Provide(func() config.Component { return cfg }),
		wmfx.MockModule(workloadmeta.NewParams()),
	))
}

// pod is a running pod with its address, as the kubelet collector stores it.
func pod(uid, name, ip string) *workloadmeta.KubernetesPod {
	return &workloadmeta.KubernetesPod{
		EntityID:   workloadmeta.EntityID{Kind: workloadmeta.KindKubernetesPod, ID: uid},
		EntityMeta: workloadmeta.EntityMeta{Name: name, Namespace: "shop"},
		Phase:      "Running",
		IP:         ip,
	}
}

// tagPod gives the pod the tags the tagger's kubelet collector gives one
// of a deployment behind a service (pod_name is orchestrator cardinality).
func tagPod(tg taggermock.Mock, uid, deployment, podName string) {
	tg.SetTags(types.NewEntityID(types.KubernetesPodUID, uid), "kubelet",
		[]string{"kube_namespace:shop", "kube_deployment:" + deployment, "kube_service:" + deployment},
		[]string{"pod_name:" + podName}, nil, nil)
}

// podCheck is go-metro registered as agent-workspace.sh registers it, with
// the mocks for store and tagger, configured on a replay between the two
// pods' addresses.
func podCheck(t *testing.T, wmeta wmmock.Mock, tg taggermock.Mock, extra string) (*Check, *mocksender.MockSender) {
	t.Helper()
	factory := Factory(wmeta, tg)
	newInstance, ok := factory.Get()
	if !ok {
		t.Fatal("Factory gave no constructor")
	}
	c := newInstance().(*Check)
	instance := "interface: file\npcap: " + writePcap(t, handshakeAndTwoRequests) + "\nips: [10.77.9.0/24]\nreverse_dns: false\n" + extra
	sm := mocksender.CreateDefaultDemultiplexer()
	t.Cleanup(func() { sm.Stop(false) })
	if err := configureAsLoader(c, sm, integration.Data(instance), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Cancel)
	s := mocksender.NewMockSenderWithSenderManager(c.ID(), sm)
	s.SetupAcceptAll()
	return c, s
}

// rttTags are the tag sets of the rtt.avg gauges of the calls, sorted.
func rttTags(calls []mock.Call) [][]string {
	var out [][]string
	for _, c := range calls {
		if c.Method == "Gauge" && c.Arguments.String(0) == rttcheck.MetricRTTAvg {
			tags := slices.Clone(c.Arguments.Get(3).([]string))
			sort.Strings(tags)
			out = append(out, tags)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i], ",") < strings.Join(out[j], ",") })
	return out
}

// A pod's address is local without local_ips (the replay would otherwise
// infer it), and both pods' series carry their kube tags on the right end,
// at the agent's checks cardinality (low) or the instance's.
func TestPodWorkload(t *testing.T) {
	for _, tc := range []struct {
		extra              string
		checkout, payments string // src/dst names
		orch               bool   // pod_name tags
	}{
		{"", "checkout", "payments", false},
		{"tag_cardinality: orchestrator\n", "checkout-5f7c-a1", "payments-6d8b-b2", true},
	} {
		name := strings.TrimSpace(tc.extra)
		if name == "" {
			name = "checks_tag_cardinality"
		}
		t.Run(name, func(t *testing.T) {
			cfg := config.NewMock(t)
			wmeta := newWorkloadmetaMock(t, cfg)
			tg := newTaggerMock(t, cfg, wmeta)
			// Both pods are known when the replay, which runs once, starts:
			// each end's flow is timed from its own side.
			wmeta.Set(pod("uid-checkout", "checkout-5f7c-a1", localIP))
			tagPod(tg, "uid-checkout", "checkout", "checkout-5f7c-a1")
			wmeta.Set(pod("uid-payments", "payments-6d8b-b2", remoteIP))
			tagPod(tg, "uid-payments", "payments", "payments-6d8b-b2")
			c, s := podCheck(t, wmeta, tg, tc.extra)
			waitInventory(t, c, "workloads", "2")

			runUntil(t, c, s, func(calls []mock.Call) bool { return len(rttTags(calls)) == 2 })
			got := rttTags(s.Calls)
			tags := func(src, dst string, local, remote string) []string {
				out := []string{"src:" + src, "dst:" + dst, "iface:file",
					"kube_namespace:shop", "kube_deployment:" + local, "kube_service:" + local,
					"dst_kube_namespace:shop", "dst_kube_deployment:" + remote, "dst_kube_service:" + remote}
				if tc.orch {
					out = append(out, "pod_name:"+src, "dst_pod_name:"+dst)
				}
				sort.Strings(out)
				return out
			}
			want := [][]string{tags(tc.checkout, tc.payments, "checkout", "payments"), tags(tc.payments, tc.checkout, "payments", "checkout")}
			sort.Slice(want, func(i, j int) bool { return strings.Join(want[i], ",") < strings.Join(want[j], ",") })
			if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
				t.Errorf("rtt.avg tag sets\n%q\nwant\n%q", got, want)
			}
			// The client pod's side is timed as the kernel would: the
			// replay's RFC 6298 SRTT.
			s.AssertMetric(t, "Gauge", rttcheck.MetricRTTAvg, 13.59375, "", []string{"src:" + tc.checkout, "dst_kube_service:payments"})
		})
	}
}

// Pods that stop give their address back; the last instance's Cancel ends
// the subscription.
func TestPodStopsAndCancel(t *testing.T) {
	cfg := config.NewMock(t)
	wmeta := newWorkloadmetaMock(t, cfg)
	tg := newTaggerMock(t, cfg, wmeta)
	p := pod("uid-checkout", "checkout-5f7c-a1", localIP)
	wmeta.Set(p)
	c, _ := podCheck(t, wmeta, tg, "")
	waitInventory(t, c, "workloads", "1")
	done := pod("uid-checkout", "checkout-5f7c-a1", localIP)
	done.Phase = "Succeeded"
	wmeta.Set(done)
	waitInventory(t, c, "workloads", "0")
	wmeta.Set(pod("uid-checkout", "checkout-5f7c-a1", localIP))
	waitInventory(t, c, "workloads", "1")
	wmeta.Unset(p)
	waitInventory(t, c, "workloads", "0")

	c.Cancel()
	c.Stop() // both may come: one release
	if c.workloads.users != 0 || c.workloads.ch != nil {
		t.Errorf("after Cancel: %d users, subscribed %v", c.workloads.users, c.workloads.ch != nil)
	}
}

// waitInventory waits for the instance's inventory metadata key to read
// want (workloads change in the background).
func waitInventory(t *testing.T, c *Check, key, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.logic.Inventory()[key] != want {
		if time.Now().After(deadline) {
			t.Fatalf("inventory %s = %q, want %q", key, c.logic.Inventory()[key], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
