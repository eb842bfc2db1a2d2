// Package corechecks: CheckBase, which Go checks embed, and the catalog they
// register in.
package corechecks

import (
	"time"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	diagnose "github.com/DataDog/datadog-agent/comp/core/diagnose/def"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/collector/check/stats"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// CheckBase provides default implementations of most of check.Check.
type CheckBase struct{}

// NewCheckBase returns a CheckBase for the named check.
func NewCheckBase(name string) CheckBase { return CheckBase{} }

// BuildID sets a unique ID for an instance.
func (c *CheckBase) BuildID(integrationConfigDigest uint64, instance, initConfig integration.Data) {}

// Configure is the default check.Check Configure.
func (c *CheckBase) Configure(senderManager sender.SenderManager, _ uint64, data integration.Data, initConfig integration.Data, source, provider string) error {
	return nil
}

// CommonConfigure applies the options every check shares.
func (c *CheckBase) CommonConfigure(senderManager sender.SenderManager, initConfig, instanceConfig integration.Data, source, provider string) error {
	return nil
}

func (c *CheckBase) Warn(v ...interface{}) error                      { return nil }
func (c *CheckBase) Warnf(format string, params ...interface{}) error { return nil }
func (c *CheckBase) Stop()                                            {}
func (c *CheckBase) Cancel()                                          {}
func (c *CheckBase) Interval() time.Duration                          { return 0 }
func (c *CheckBase) String() string                                   { return "" }
func (c *CheckBase) Loader() string                                   { return "" }
func (c *CheckBase) Version() string                                  { return "" }
func (c *CheckBase) ConfigSource() string                             { return "" }
func (c *CheckBase) ConfigProvider() string                           { return "" }
func (c *CheckBase) InitConfig() string                               { return "" }
func (c *CheckBase) InstanceConfig() string                           { return "" }
func (c *CheckBase) ID() checkid.ID                                   { return "" }
func (c *CheckBase) IsTelemetryEnabled() bool                         { return false }
func (c *CheckBase) GetWarnings() []error                             { return nil }
func (c *CheckBase) GetSender() (sender.Sender, error)                { return nil, nil }
func (c *CheckBase) GetSenderStats() (stats.SenderStats, error)       { return stats.SenderStats{}, nil }
func (c *CheckBase) GetDiagnoses() ([]diagnose.Diagnosis, error)      { return nil, nil }
func (c *CheckBase) IsHASupported() bool                              { return false }

// RegisterCheck adds a check factory to the core checks' catalog.
func RegisterCheck(name string, checkFactory option.Option[func() check.Check]) {}
