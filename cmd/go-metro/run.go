package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/spf13/cobra"
)

const defaultLogFile = "/var/log/datadog/go-metro.log"

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var cfgPath, logFile string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the checks and send their metrics to DogStatsD until SIGINT/SIGTERM",
		Long: "Run the checks and send their metrics to DogStatsD until SIGINT or SIGTERM.\n\n" +
			"SIGHUP reloads the configuration file: when it is valid, the checks restart with it\n" +
			"(capture stops for a moment; flows and counters start afresh); when it is not, the\n" +
			"error is logged and the running configuration stays. `systemctl reload` can send it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			return runDaemon(cmd.Context(), cfgPath, logFile, stderr, hup)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "conf.yaml with init_config and instances (required)")
	cmd.Flags().StringVar(&logFile, "log-file", defaultLogFile, "log file used when init_config has log_to_file: true")
	cmd.MarkFlagRequired("config")
	return cmd
}

// configureAll configures one check per instance of the loaded file; on
// error every check already started is cancelled.
func configureAll(cf *checkFile, log *logger, opts rttcheck.Options) ([]*rttcheck.Check, error) {
	for _, w := range cf.Warnings {
		log.Warnf("%s", w)
	}
	opts.Logger = log
	var checks []*rttcheck.Check
	for i, cfg := range cf.Instances {
		c := rttcheck.New(opts)
		if err := c.Configure(cfg); err != nil {
			for _, c := range checks {
				c.Cancel()
			}
			return nil, fmt.Errorf("%s: instances[%d]: %w", cf.Path, i, err)
		}
		checks = append(checks, c)
	}
	return checks, nil
}

// runDaemon runs the configuration at cfgPath until ctx ends, and loads it
// again on every value from reload (SIGHUP).
func runDaemon(ctx context.Context, cfgPath, logFile string, stderr io.Writer, reload <-chan os.Signal) error {
	cf, err := loadCheckFile(cfgPath)
	if err != nil {
		return err
	}
	d, err := startDaemon(cf, logFile, stderr)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			d.log.Infof("go-metro: shutting down")
			d.stop()
			return nil
		case <-reload:
		}
		d.log.Infof("go-metro: SIGHUP: reloading %s", cfgPath)
		// A file that does not load leaves the running checks alone.
		ncf, err := loadCheckFile(cfgPath)
		if err != nil {
			d.log.Errorf("go-metro: reload failed, the running configuration stays: %s", oneLine(err.Error()))
			continue
		}
		d.stop()
		nd, err := startDaemon(ncf, logFile, stderr)
		if err != nil {
			// It loaded but did not start (its log file, a check's
			// Configure): the previous configuration started before.
			od, oerr := startDaemon(d.cf, logFile, stderr)
			if oerr != nil {
				return fmt.Errorf("reload: %v; the previous configuration did not start again either: %v", err, oerr)
			}
			od.log.Errorf("go-metro: reload failed, the previous configuration runs again: %s", oneLine(err.Error()))
			d = od
			continue
		}
		nd.log.Infof("go-metro: configuration reloaded")
		d = nd
	}
}

// daemon is one configuration running: its log, its DogStatsD client, its
// checks and their schedules.
type daemon struct {
	cf      *checkFile
	log     *logger
	logFile *os.File // nil when logging to stderr
	client  *statsd.Client
	checks  []*rttcheck.Check
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startDaemon(cf *checkFile, logFile string, stderr io.Writer) (_ *daemon, err error) {
	d := &daemon{cf: cf}
	defer func() {
		if err != nil && d.logFile != nil {
			d.logFile.Close()
		}
	}()
	var logOut io.Writer = stderr
	if cf.Init.LogToFile {
		if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		d.logFile, logOut = f, f
	}
	d.log = newLogger(logOut, cf.Init.LogLevel)

	target, err := parseStatsdTarget(cf.Init.StatsdIP, cf.Init.StatsdPort)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cf.Path, err)
	}
	health := newSendHealth(target.String(), d.log)
	if d.client, err = newStatsdClient(target, health); err != nil {
		return nil, fmt.Errorf("dogstatsd at %s: %w", target, err)
	}
	if d.checks, err = configureAll(cf, d.log, rttcheck.Options{AddInstanceTags: true}); err != nil {
		d.client.Close()
		return nil, err
	}
	d.log.Infof("go-metro: %d instance(s) running, metrics to dogstatsd at %s", len(d.checks), target)

	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for _, c := range d.checks {
		d.wg.Add(1)
		// c.Run is this goroutine's panic boundary: it returns a panic
		// of the check as an error, which scheduleCheck logs.
		go func(c *rttcheck.Check) {
			defer d.wg.Done()
			scheduleCheck(ctx, c, &statsdSender{c: d.client, health: health, prev: map[string]float64{}}, d.log)
		}(c)
	}
	return d, nil
}

// stop ends the schedules, cancels the checks (their captures close),
// flushes what was submitted and closes the client and the log file.
func (d *daemon) stop() {
	d.cancel()
	for _, c := range d.checks {
		c.Cancel()
	}
	d.wg.Wait()
	d.client.Flush()
	d.client.Close()
	if d.logFile != nil {
		d.logFile.Close()
	}
}

// scheduleCheck runs c every min_collection_interval until ctx ends, the
// way the agent's scheduler would.
func scheduleCheck(ctx context.Context, c *rttcheck.Check, s *statsdSender, log *logger) {
	in := c.Config().Instance
	t := time.NewTicker(in.MinCollectionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		warnings, err := c.Run(s, s)
		for _, w := range warnings {
			log.Warnf("go-metro: %s: %s", in.Interface, w)
		}
		if err != nil {
			log.Errorf("go-metro: %s: %v", in.Interface, err)
		}
	}
}

// statsdSender adapts the check's Sender to DogStatsD. DogStatsD has no
// monotonic count, so it sends the increase since the previous value, as
// the agent's aggregator would.
type statsdSender struct {
	c      statsd.ClientInterface
	health *sendHealth // told when a flush is done; nil in tests
	mu     sync.Mutex
	prev   map[string]float64
}

func (s *statsdSender) Gauge(m string, v float64, _ string, tags []string) { s.c.Gauge(m, v, tags, 1) }
func (s *statsdSender) Count(m string, v float64, _ string, tags []string) {
	s.c.Count(m, int64(v), tags, 1)
}

func (s *statsdSender) MonotonicCount(m string, v float64, _ string, tags []string) {
	key := m + "|" + strings.Join(tags, ",")
	s.mu.Lock()
	prev, seen := s.prev[key]
	s.prev[key] = v
	s.mu.Unlock()
	// The first value only sets the baseline; a decrease is a counter reset.
	if seen && v >= prev {
		s.c.Count(m, int64(v-prev), tags, 1)
	}
}

// Distribution sends a DogStatsD distribution (type d): the agent keeps it
// in a sketch, so percentiles aggregate across hosts.
func (s *statsdSender) Distribution(m string, v float64, _ string, tags []string) {
	s.c.Distribution(m, v, tags, 1)
}

// Commit flushes: the client's Flush returns once every payload is written.
func (s *statsdSender) Commit() {
	s.c.Flush()
	s.health.commit()
}

func (s *statsdSender) ServiceCheck(name string, st rttcheck.ServiceCheckStatus, _ string, tags []string, msg string) {
	s.c.ServiceCheck(&statsd.ServiceCheck{Name: name, Status: statsd.ServiceCheckStatus(st), Tags: tags, Message: msg})
}
