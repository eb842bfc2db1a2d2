// Package sender: the sender a check submits through (the methods go-metro
// calls) and the manager that hands it out.
package sender

import (
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
)

// Sender submits one check instance's data.
type Sender interface {
	Commit()
	Gauge(metric string, value float64, hostname string, tags []string)
	Rate(metric string, value float64, hostname string, tags []string)
	Count(metric string, value float64, hostname string, tags []string)
	MonotonicCount(metric string, value float64, hostname string, tags []string)
	Histogram(metric string, value float64, hostname string, tags []string)
	Distribution(metric string, value float64, hostname string, tags []string)
	ServiceCheck(checkName string, status servicecheck.ServiceCheckStatus, hostname string, tags []string, message string)
	FinalizeCheckServiceTag()
}

// SenderManager hands out senders by check ID.
type SenderManager interface {
	GetSender(id checkid.ID) (Sender, error)
	SetSender(Sender, checkid.ID) error
	DestroySender(id checkid.ID)
	GetDefaultSender() (Sender, error)
}
