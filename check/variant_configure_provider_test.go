//go:build test && gometro_configure_provider

package gometro

import (
	"testing"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/mocksender"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
)

// configureAsLoader calls Configure as the agent's core-check loader does.
func configureAsLoader(c *Check, sm sender.SenderManager, instance, initConfig integration.Data) error {
	return c.Configure(sm, integration.FakeConfigHash, instance, initConfig, "test", "file")
}

// The provider reaches CheckBase, which reports it in `agent status`.
func TestConfigProvider(t *testing.T) {
	c := newCheck(nil).(*Check)
	sm := mocksender.CreateDefaultDemultiplexer()
	t.Cleanup(func() { sm.Stop(false) })
	if err := configureAsLoader(c, sm, integration.Data("interface: lo\nreverse_dns: false\nall_remote_hosts: true\n"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Cancel)
	if got := c.ConfigProvider(); got != "file" {
		t.Errorf("ConfigProvider() = %q, want file", got)
	}
}
