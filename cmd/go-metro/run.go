package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), cfgPath, logFile, stderr)
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

func runDaemon(ctx context.Context, cfgPath, logFile string, stderr io.Writer) error {
	cf, err := loadCheckFile(cfgPath)
	if err != nil {
		return err
	}
	var logOut io.Writer = stderr
	if cf.Init.LogToFile {
		if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	log := newLogger(logOut, cf.Init.LogLevel)

	target, err := parseStatsdTarget(cf.Init.StatsdIP, cf.Init.StatsdPort)
	if err != nil {
		return fmt.Errorf("%s: %w", cf.Path, err)
	}
	health := newSendHealth(target.String(), log)
	client, err := newStatsdClient(target, health)
	if err != nil {
		return fmt.Errorf("dogstatsd at %s: %w", target, err)
	}
	defer client.Close()

	checks, err := configureAll(cf, log, rttcheck.Options{AddInstanceTags: true})
	if err != nil {
		return err
	}
	log.Infof("go-metro: %d instance(s) running, metrics to dogstatsd at %s", len(checks), target)

	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		// c.Run is this goroutine's panic boundary: it returns a panic
		// of the check as an error, which scheduleCheck logs.
		go func(c *rttcheck.Check) {
			defer wg.Done()
			scheduleCheck(ctx, c, &statsdSender{c: client, health: health, prev: map[string]float64{}}, log)
		}(c)
	}
	<-ctx.Done()
	log.Infof("go-metro: shutting down")
	for _, c := range checks {
		c.Cancel()
	}
	wg.Wait()
	client.Flush()
	return nil
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
