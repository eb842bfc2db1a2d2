package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gometro/go-metro/internal/checkrec"
	"github.com/gometro/go-metro/rttcheck"
	"github.com/spf13/cobra"
)

func newCheckCmd(stdout, stderr io.Writer) *cobra.Command {
	var cfgPath string
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check --config FILE [--duration 15s] [--json]",
		Short: "Run the checks for a while and print what they would submit, like `agent check`",
		Long: "Run the checks for a while and print what they would submit, like `agent check`.\n\n" +
			"Exit status: 0 when every instance captured (or replayed its file); 1 when an\n" +
			"instance's go_metro.can_capture is CRITICAL (no CAP_NET_RAW, a missing interface,\n" +
			"a replay that failed) or its run failed, with one line per such instance on stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration < 0 {
				return fmt.Errorf("--duration %s is negative", duration)
			}
			return runCheckOnce(cmd.Context(), cfgPath, duration, asJSON, stdout, stderr)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "conf.yaml with init_config and instances (required)")
	cmd.Flags().DurationVar(&duration, "duration", 15*time.Second, "how long to capture before reporting")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	cmd.MarkFlagRequired("config")
	return cmd
}

// recording is what a run submitted (a checkrec.Recorder's), as printed.
type recording struct {
	Metrics  []metricOut `json:"metrics"`
	Checks   []scOut     `json:"service_checks"`
	Warnings []string    `json:"warnings"`
	Error    string      `json:"error,omitempty"`
	Instance string      `json:"instance"`
}

type metricOut struct {
	Metric string   `json:"metric"`
	Type   string   `json:"type"`
	Value  float64  `json:"value"`
	Tags   []string `json:"tags"`
}

type scOut struct {
	Name    string   `json:"check"`
	Status  string   `json:"status"`
	Code    int      `json:"status_code"`
	Tags    []string `json:"tags"`
	Message string   `json:"message"`
}

func runCheckOnce(ctx context.Context, cfgPath string, d time.Duration, asJSON bool, stdout, stderr io.Writer) error {
	log := newLogger(stderr, "warn")
	cf, err := loadCheckFile(cfgPath)
	if err != nil {
		return err
	}
	checks, err := configureAll(cf, log, rttcheck.Options{AddInstanceTags: true})
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range checks {
			c.Cancel()
		}
	}()
	waitChecks(ctx, checks, d)
	var results []*recording
	failed := false
	for _, c := range checks {
		var rec checkrec.Recorder
		warnings, err := c.Run(&rec, &rec)
		r := &recording{Instance: c.Config().Instance.Interface, Metrics: []metricOut{}, Checks: []scOut{}, Warnings: append([]string{}, warnings...)}
		for _, m := range rec.Metrics() {
			r.Metrics = append(r.Metrics, metricOut{m.Name, m.Type, m.Value, m.Tags})
		}
		for _, sc := range rec.ServiceChecks() {
			r.Checks = append(r.Checks, scOut{sc.Name, sc.Status.String(), int(sc.Status), sc.Tags, sc.Message})
		}
		if err != nil {
			r.Error = err.Error()
			failed = true
		}
		results = append(results, r)
	}
	// The checks log to stderr from their own goroutines: stop them
	// before writing there.
	for _, c := range checks {
		c.Cancel()
	}
	// Like `agent check`, which exits non-zero when a check reports an
	// error: a CRITICAL can_capture (no capture permission, a missing
	// interface, a replay that failed) is a failed check, and scripts and
	// CI must see it in the exit status. Each gets one line on stderr.
	for i, r := range results {
		for _, sc := range r.Checks {
			if sc.Name == rttcheck.ServiceCheckName && sc.Code == int(rttcheck.StatusCritical) {
				fmt.Fprintf(stderr, "go-metro: instance #%d (%s): %s CRITICAL: %s\n", i, r.Instance, sc.Name, oneLine(sc.Message))
				failed = true
			}
		}
		if r.Error != "" {
			fmt.Fprintf(stderr, "go-metro: instance #%d (%s): %s\n", i, r.Instance, oneLine(r.Error))
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printRecordings(stdout, results)
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

// waitChecks lets the checks capture for d. Replays are always read to the
// end first (their results are complete), and when every instance is a
// replay there is nothing more to wait for once they are done. Ctrl-C ends
// the wait early: what was gathered so far is reported.
func waitChecks(ctx context.Context, checks []*rttcheck.Check, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	live := false
	for _, c := range checks {
		if c.Config().Instance.Interface != rttcheck.FileInterface {
			live = true
			continue
		}
		select {
		case <-c.CaptureDone():
		case <-ctx.Done():
			return
		}
	}
	if !live {
		return
	}
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func printRecordings(w io.Writer, results []*recording) {
	for i, r := range results {
		fmt.Fprintf(w, "=== go-metro instance #%d (%s) ===\n", i, r.Instance)
		fmt.Fprintf(w, "--- Series (%d) ---\n", len(r.Metrics))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "METRIC\tTYPE\tVALUE\tTAGS")
		for _, m := range r.Metrics {
			fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\n", m.Metric, m.Type, m.Value, strings.Join(m.Tags, ","))
		}
		tw.Flush()
		fmt.Fprintf(w, "--- Service Checks (%d) ---\n", len(r.Checks))
		for _, sc := range r.Checks {
			fmt.Fprintf(w, "%s %s [%s] %s\n", sc.Name, sc.Status, strings.Join(sc.Tags, ","), sc.Message)
		}
		if len(r.Warnings) > 0 {
			fmt.Fprintf(w, "--- Warnings (%d) ---\n", len(r.Warnings))
			for _, wr := range r.Warnings {
				fmt.Fprintln(w, wr)
			}
		}
		if r.Error != "" {
			fmt.Fprintf(w, "--- Error ---\n%s\n", r.Error)
		}
	}
}
