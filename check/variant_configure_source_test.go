//go:build test && !gometro_configure_provider

package gometro

import (
	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
)

// configureAsLoader calls Configure as the agent's core-check loader does.
func configureAsLoader(c *Check, sm sender.SenderManager, instance, initConfig integration.Data) error {
	return c.Configure(sm, integration.FakeConfigHash, instance, initConfig, "test")
}
