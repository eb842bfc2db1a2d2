//go:build gometro_configure_provider

package gometro

import (
	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
)

// Configure is the check.Check method of agents 7.78 and later (upstream
// pull request 44544), which also pass the name of the configuration
// provider (file, kubernetes, ...). CheckBase keeps it for
// ConfigProvider(), so it goes on to CommonConfigure.
func (c *Check) Configure(senderManager sender.SenderManager, integrationConfigDigest uint64, instance, initConfig integration.Data, source, provider string) error {
	return c.configure(senderManager, integrationConfigDigest, instance, initConfig, func() error {
		return c.CommonConfigure(senderManager, initConfig, instance, source, provider)
	})
}
