//go:build !gometro_configure_provider

package gometro

import (
	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
)

// Configure is the check.Check method of agents 7.63 to 7.77, which pass
// the configuration's source but not its provider. agent-tags.sh selects
// this file unless the checkout's check.Check.Configure takes a provider.
func (c *Check) Configure(senderManager sender.SenderManager, integrationConfigDigest uint64, instance, initConfig integration.Data, source string) error {
	return c.configure(senderManager, integrationConfigDigest, instance, initConfig, func() error {
		return c.CommonConfigure(senderManager, initConfig, instance, source)
	})
}
