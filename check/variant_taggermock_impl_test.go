//go:build test && gometro_taggermock_impl

package gometro

import (
	"testing"

	"github.com/DataDog/datadog-agent/comp/core/config"
	logimpl "github.com/DataDog/datadog-agent/comp/core/log/impl"
	taggerimpl "github.com/DataDog/datadog-agent/comp/core/tagger/impl"
	taggermock "github.com/DataDog/datadog-agent/comp/core/tagger/mock"
	noopsimpl "github.com/DataDog/datadog-agent/comp/core/telemetry/noopsimpl"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
	"github.com/stretchr/testify/mock"
)

// newTaggerMock is the tagger mock where agents from 7.65 on keep it: the
// local tagger over a tag store (comp/core/tagger/impl NewMock, what
// comp/core/tagger/fx-mock provides), which maps ChecksConfigCardinality
// to cfg's checks_tag_cardinality.
func newTaggerMock(_ *testing.T, cfg config.Component, wmeta workloadmeta.Component) taggermock.Mock {
	return taggerimpl.NewMock(taggerimpl.MockRequires{
		Config:       cfg,
		WorkloadMeta: wmeta,
		Log:          logimpl.NewTemporaryLoggerWithoutInit(),
		Telemetry:    noopsimpl.GetCompatComponent(),
	}).Comp
}

// Without tag_cardinality the tags follow the agent's checks_tag_cardinality.
func TestPodFollowsChecksTagCardinality(t *testing.T) {
	cfg := config.NewMockFromYAML(t, "checks_tag_cardinality: orchestrator\n")
	wmeta := newWorkloadmetaMock(t, cfg)
	tg := newTaggerMock(t, cfg, wmeta)
	wmeta.Set(pod("uid-checkout", "checkout-5f7c-a1", localIP))
	tagPod(tg, "uid-checkout", "checkout", "checkout-5f7c-a1")
	c, s := podCheck(t, wmeta, tg, "")
	waitInventory(t, c, "workloads", "1")
	runUntil(t, c, s, func(calls []mock.Call) bool { return len(rttTags(calls)) == 1 })
	s.AssertMetricTaggedWith(t, "Gauge", "system.net.tcp.rtt.avg", []string{"src:checkout-5f7c-a1", "pod_name:checkout-5f7c-a1", "kube_service:checkout"})
}
