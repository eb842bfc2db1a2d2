// Package gometro registers go-metro as a Datadog Agent core check.
//
// It is only the glue between the agent's corechecks.CheckBase and the
// agent-free check in github.com/gometro/go-metro/rttcheck, which owns the
// configuration, the capture lifecycle and the metric policy. Keeping this
// package thin matters because it is the only code that needs a
// datadog-agent checkout to build: everything testable without the agent
// lives in rttcheck.
//
// To compile it into an agent, list this module and the go-metro root module
// in the checkout's go.work and add one line to RegisterChecks in
// pkg/commonchecks/corechecks.go, passing it the workloadmeta store and
// the tagger RegisterChecks receives (see README.md):
//
//	corecheckLoader.RegisterCheck(gometro.CheckName, gometro.Factory(store, tagger))
package gometro

import (
	"fmt"
	"sync"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	core "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/DataDog/datadog-agent/pkg/util/log"
	"github.com/DataDog/datadog-agent/pkg/util/option"

	"github.com/gometro/go-metro/rttcheck"
)

// CheckName is the name the check is registered and configured under:
// conf.d/go-metro.d/conf.yaml, `agent check go-metro`.
const CheckName = "go-metro"

// Check is one configured instance of the go-metro core check.
type Check struct {
	core.CheckBase
	logic     *rttcheck.Check
	workloads *workloads // nil without the agent's workload metadata

	wmu     sync.Mutex
	holding bool // workloads acquired by Configure, not yet released
}

// Factory returns the constructor the agent's core-check loader calls once
// per configured instance. store and tagger are what RegisterChecks
// receives: this host's containers and pods and their tags, which make
// their addresses local and tag their series (rttcheck.Workloads).
// Either may be nil: the check then knows no workloads.
func Factory(store workloadmeta.Component, tagger tagger.Component) option.Option[func() check.Check] {
	w := newWorkloads(store, tagger)
	return option.New(func() check.Check { return newCheck(w) })
}

func newCheck(w *workloads) check.Check {
	c := &Check{CheckBase: core.NewCheckBase(CheckName), workloads: w}
	opts := rttcheck.Options{
		// CheckBase's sender appends the instance's `tags` (and `service`)
		// to every submission itself; adding them in rttcheck too would
		// duplicate them.
		AddInstanceTags: false,
		Logger:          agentLogger{c: c},
	}
	if w != nil {
		opts.Workloads = w // not a nil *workloads in a non-nil interface
	}
	c.logic = rttcheck.New(opts)
	return c
}

// configure is Configure's body, shared by the agent API variants
// (variant_configure_*.go): they differ only in how CheckBase.CommonConfigure
// is called, which commonConfigure does. An error here is shown under
// "Loading Errors" in `agent status` and the instance is never retried, so
// configuration problems must be reported here, not in Run.
func (c *Check) configure(senderManager sender.SenderManager, integrationConfigDigest uint64, instance, initConfig integration.Data, commonConfigure func() error) error {
	// Validate first: rttcheck's errors name the key and the reason, while
	// CheckBase's YAML decoding of the keys it shares with us (tags,
	// min_collection_interval, ...) only says which Go type did not fit.
	// The loader prefixes "Could not configure check go-metro: " itself.
	// The parsed configuration goes on to rttcheck: one parse per instance.
	cfg, err := rttcheck.ParseConfig(instance, initConfig, -1)
	if err != nil {
		return err
	}
	// The ID must be unique per instance (one per interface is common), and
	// it must be set before CommonConfigure, which fetches the sender by ID.
	c.BuildID(integrationConfigDigest, instance, initConfig)
	if err := commonConfigure(); err != nil {
		return fmt.Errorf("common check options (min_collection_interval, tags, service, empty_default_hostname): %w", err)
	}
	// CheckBase.Configure (which we override) appends `service:` to the
	// check's tags here; CommonConfigure alone only records it.
	s, err := c.GetSender()
	if err != nil {
		return fmt.Errorf("getting the sender for %s: %w", c.ID(), err)
	}
	s.FinalizeCheckServiceTag()

	// Before rttcheck's Configure: its capture opens with the workloads'
	// addresses.
	if c.workloads != nil {
		c.wmu.Lock()
		c.workloads.acquire()
		c.holding = true
		c.wmu.Unlock()
	}
	if err := c.logic.Configure(cfg); err != nil {
		c.releaseWorkloads()
		return err
	}
	return nil
}

// releaseWorkloads gives back what Configure acquired; Cancel and Stop may
// both come.
func (c *Check) releaseWorkloads() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.holding {
		c.workloads.release()
		c.holding = false
	}
}

// Run submits the RTT metrics gathered since the previous run. Warnings are
// cleared by the agent after every run, so rttcheck returns them again on
// each Run for as long as the problem lasts.
func (c *Check) Run() error {
	s, err := c.GetSender()
	if err != nil {
		return fmt.Errorf("%s: getting the sender for %s: %w", CheckName, c.ID(), err)
	}
	warnings, err := c.logic.Run(s, serviceCheckSender{s: s})
	c.setInventory()
	for _, w := range warnings {
		_ = c.Warnf("%s", w)
	}
	return err
}

// Cancel is called when the instance is unscheduled: it stops the capture
// and releases its socket or file.
func (c *Check) Cancel() {
	c.logic.Cancel()
	c.releaseWorkloads()
	c.CheckBase.Cancel()
}

// Stop is what the agent calls on a check whose Run is in progress when the
// agent shuts down; the capture must not outlive it either.
func (c *Check) Stop() {
	c.logic.Cancel()
	c.releaseWorkloads()
	c.CheckBase.Stop()
}

// serviceCheckSender adapts the agent's sender to rttcheck's service-check
// interface, whose status type avoids importing the agent.
type serviceCheckSender struct {
	s sender.Sender
}

func (a serviceCheckSender) ServiceCheck(name string, status rttcheck.ServiceCheckStatus, hostname string, tags []string, message string) {
	a.s.ServiceCheck(name, agentStatus(status), hostname, tags, message)
}

// agentStatus maps the statuses by name rather than by converting the
// integer, so a change on either side cannot silently turn a CRITICAL into
// something else.
func agentStatus(s rttcheck.ServiceCheckStatus) servicecheck.ServiceCheckStatus {
	switch s {
	case rttcheck.StatusOK:
		return servicecheck.ServiceCheckOK
	case rttcheck.StatusWarning:
		return servicecheck.ServiceCheckWarning
	case rttcheck.StatusCritical:
		return servicecheck.ServiceCheckCritical
	default:
		return servicecheck.ServiceCheckUnknown
	}
}

// agentLogger sends rttcheck's log lines to the agent's log in the agent's
// own format for checks, with the instance's check ID as context (one
// instance per interface is common, so the name alone is ambiguous) and the
// file and line of the rttcheck caller rather than of this adapter. The ID
// is read at log time because BuildID only sets it in Configure, after the
// logger was handed to rttcheck.New.
type agentLogger struct {
	c *Check
}

// callerDepth skips the adapter's own frame.
const callerDepth = 1

func (l agentLogger) Debugf(format string, params ...interface{}) {
	if !log.ShouldLog(log.DebugLvl) {
		return // skip formatting: debug lines can be per remote address
	}
	log.DebugcStackDepth(fmt.Sprintf(format, params...), callerDepth, "check", string(l.c.ID()))
}

func (l agentLogger) Infof(format string, params ...interface{}) {
	log.InfocStackDepth(fmt.Sprintf(format, params...), callerDepth, "check", string(l.c.ID()))
}

func (l agentLogger) Warnf(format string, params ...interface{}) {
	_ = log.WarncStackDepth(fmt.Sprintf(format, params...), callerDepth, "check", string(l.c.ID()))
}

func (l agentLogger) Errorf(format string, params ...interface{}) {
	_ = log.ErrorcStackDepth(fmt.Sprintf(format, params...), callerDepth, "check", string(l.c.ID()))
}
