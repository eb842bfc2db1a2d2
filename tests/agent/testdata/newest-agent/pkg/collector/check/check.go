// Package check: the interface every check implements, as agents 7.78 and
// later define it (Configure takes the provider; ConfigProvider reports it).
package check

import (
	"time"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	diagnose "github.com/DataDog/datadog-agent/comp/core/diagnose/def"
	"github.com/DataDog/datadog-agent/comp/metadata/inventorychecks"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/collector/check/stats"
)

// Check is an interface for types capable to run checks
type Check interface {
	Run() error
	Stop()
	Cancel()
	String() string
	Loader() string
	Configure(senderManager sender.SenderManager, integrationConfigDigest uint64, config, initConfig integration.Data, source, provider string) error
	Interval() time.Duration
	ID() checkid.ID
	GetWarnings() []error
	GetSenderStats() (stats.SenderStats, error)
	Version() string
	ConfigSource() string
	ConfigProvider() string
	IsTelemetryEnabled() bool
	InitConfig() string
	InstanceConfig() string
	GetDiagnoses() ([]diagnose.Diagnosis, error)
	IsHASupported() bool
}

// GetInventoryChecksContext returns the inventory component checks publish
// their metadata to.
func GetInventoryChecksContext() (inventorychecks.Component, error) { return nil, nil }
