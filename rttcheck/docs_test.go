package rttcheck

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"
)

// TestExampleDocumentsEveryKey keeps conf.yaml.example in step with the parser.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../conf.d/go-metro.d/conf.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, k := range append(append([]string{}, InitKeys...), InstanceKeys...) {
		if k == "expired_ttl" {
			k = "exp_ttl" // documented together with exp_ttl
		}
		if !strings.Contains(text, "## @param "+k+" - ") {
			t.Errorf("key %q is not documented with @param", k)
		}
	}
	// Every listed key is one the parser reads: set to null it is accepted,
	// or rejected by its name, but never warned about as unknown. The last,
	// unlisted key shows that the test can tell the difference.
	for _, section := range []string{"init_config", "instance"} {
		keys := InstanceKeys
		if section == "init_config" {
			keys = InitKeys
		}
		for _, k := range append(slices.Clone(keys), "no_such_key") {
			base := yaml.MapSlice{{Key: "interface", Value: "eth0"}, {Key: "ips", Value: []string{"10.0.0.1"}}}
			doc := yaml.MapSlice{{Key: k, Value: nil}}
			if section == "instance" {
				doc = append(slices.DeleteFunc(base, func(it yaml.MapItem) bool { return it.Key == k }), doc...)
			}
			inst, init := mustMarshal(t, base), mustMarshal(t, doc)
			if section == "instance" {
				inst, init = init, nil
			}
			cfg, err := ParseConfig(inst, init, -1)
			warned := false
			if err == nil {
				for _, w := range cfg.Warnings {
					warned = warned || strings.Contains(w, fmt.Sprintf("unknown key %q", k))
				}
			}
			var ce *ConfigError
			switch {
			case k == "no_such_key" && !warned:
				t.Errorf("%s: an unlisted key gives no unknown-key warning (err %v)", section, err)
			case k != "no_such_key" && warned:
				t.Errorf("%s: listed key %q is warned about as unknown", section, k)
			case err != nil && !(errors.As(err, &ce) && strings.HasPrefix(ce.Key, k)):
				t.Errorf("%s: %s: ~ gives an error that does not name it: %v", section, k, err)
			}
		}
	}
	// The example as shipped must parse cleanly.
	var file struct {
		Init      yaml.MapSlice   `yaml:"init_config"`
		Instances []yaml.MapSlice `yaml:"instances"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	initB, _ := yaml.Marshal(file.Init)
	for i, in := range file.Instances {
		b, _ := yaml.Marshal(in)
		cfg, err := ParseConfig(b, initB, i)
		if err != nil {
			t.Fatalf("example instance %d: %v", i, err)
		}
		if len(cfg.Warnings) > 0 {
			t.Errorf("example warnings: %q", cfg.Warnings)
		}
	}
}

// TestMetadataListsEveryMetric keeps metadata.csv in step with what Run sends.
func TestMetadataListsEveryMetric(t *testing.T) {
	f, err := os.Open("../metadata.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := "metric_name,metric_type,interval,unit_name,per_unit_name,description,orientation,integration,short_name,curated_metric"
	if strings.Join(rows[0], ",") != want {
		t.Errorf("header %v", rows[0])
	}
	types := map[string]string{}
	for _, r := range rows[1:] {
		types[r[0]] = r[1]
	}
	metrics := map[string]string{
		MetricRTT: "gauge", MetricRTTAvg: "gauge", MetricRTTJitter: "gauge", MetricRTTMin: "gauge", MetricRTTMax: "gauge",
		MetricRTTSamples: "count", MetricPackets: "count", MetricKernelDrops: "count", MetricDecodeErrors: "count",
		MetricFlowsTracked: "gauge", MetricFlowsEvicted: "count",
	}
	for m, typ := range metrics {
		if types[m] != typ {
			t.Errorf("metadata.csv: %s has type %q, want %q", m, types[m], typ)
		}
	}
	if len(types) != len(metrics) {
		t.Errorf("metadata.csv lists %d metrics, the check sends %d", len(types), len(metrics))
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
