package rttcheck

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gometro/go-metro/capture/flow"
)

// The integration assets (integrations-core layout, at the repository
// root) must name only what the check really sends, and have the fields
// their formats need. "What the check sends" is learnt from a Run, not
// from a list: a renamed metric fails here.

const repoRoot = ".."

// sent runs the check once over a snapshot with a timed flow and returns
// the metrics it submitted (name -> metadata.csv type) and the service
// checks.
func sent(t *testing.T) (metrics map[string]string, checks map[string]bool) {
	t.Helper()
	snap := healthySnapshot()
	// A connection we opened, with a timed handshake, a response and a
	// sample for the distribution: what makes Run send the timing metrics.
	snap.Flows[0].Health = flow.Health{Role: flow.RoleClient, Opened: true, Handshake: msNS,
		ResponseSum: 2 * msNS, Responses: 1, RTTSeen: 1, RTTSampled: [flow.ReservoirSize]uint32{1000}}
	fe := &fakeEngine{snap: snap}
	c := newTestCheck(t, Options{}, "interface: lo\nips: [10.0.0.1]", "", fe, nil)
	waitFor(t, "engine", c.engineStarted)
	r := mustRun(t, c)
	// metadata.csv types: a monotonic count arrives in Datadog as a count.
	csvType := map[string]string{"gauge": "gauge", "count": "count", "monotonic_count": "count", "distribution": "distribution"}
	metrics, checks = map[string]string{}, map[string]bool{}
	for _, s := range r.subs {
		metrics[s.name] = csvType[s.kind]
	}
	for _, s := range r.checks {
		checks[s.name] = true
	}
	if len(metrics) < 11 || len(checks) != 1 {
		t.Fatalf("the run sent only %v and %v", metrics, checks)
	}
	return metrics, checks
}

// sentTagKeys runs the check over containers and pods (a fake of the
// agent's workloads, at high cardinality) and returns the tag names its
// host-pair series carry, with host, which the agent adds.
func sentTagKeys(t *testing.T) map[string]bool {
	t.Helper()
	w := newFakeWorkloads(map[string]fakeWorkload{web1IP: web1, web2IP: web2, apiIP: api})
	c, _ := newWorkloadCheck(t, w, "tag_cardinality: high\ntag_dst_port: true\ntag_role: true\n", workloadFlows())
	keys := map[string]bool{"host": true}
	for _, s := range mustRun(t, c).subs {
		for _, tag := range s.tags {
			k, _, _ := strings.Cut(tag, ":")
			keys[k] = true
		}
	}
	for _, k := range []string{"src", "dst", "iface", "dst_port", "kube_service", "dst_kube_service", "short_image", "dst_short_image", "container_name", "dst_container_name"} {
		if !keys[k] {
			t.Fatalf("the run sent no %s tag: %v", k, keys)
		}
	}
	return keys
}

// groupedBy finds the tags of a query's "by {a,b}" and of its "{k:v}"
// filters.
var groupedBy = regexp.MustCompile(`\bby \{([^}]*)\}`)
var filteredBy = regexp.MustCompile(`[{,]([a-z_]+):`)

// checkQueryTags fails for a tag a query groups or filters by that the
// check does not send.
func checkQueryTags(t *testing.T, where, q string, keys map[string]bool) {
	t.Helper()
	var tags []string
	for _, m := range groupedBy.FindAllStringSubmatch(q, -1) {
		tags = append(tags, strings.Split(m[1], ",")...)
	}
	for _, m := range filteredBy.FindAllStringSubmatch(q, -1) {
		tags = append(tags, m[1])
	}
	for _, tag := range tags {
		if !keys[strings.TrimSpace(tag)] {
			t.Errorf("%s: query %q uses tag %q, which the check does not send", where, q, tag)
		}
	}
}

func readJSON(t *testing.T, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// metadataCSV returns metadata.csv's rows by metric name, checking the
// integrations-core header and one integration name throughout.
func metadataCSV(t *testing.T) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "metadata.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := []string{"metric_name", "metric_type", "interval", "unit_name", "per_unit_name", "description",
		"orientation", "integration", "short_name", "curated_metric", "sample_tags"}
	if !slices.Equal(rows[0], header) {
		t.Fatalf("metadata.csv header %v, want %v", rows[0], header)
	}
	out := map[string]map[string]string{}
	for i, r := range rows[1:] {
		m := map[string]string{}
		for j, h := range header {
			m[h] = r[j]
		}
		if m["integration"] != "go_metro" {
			t.Errorf("metadata.csv row %d: integration %q, want go_metro on every row", i+2, m["integration"])
		}
		if m["unit_name"] == "" || m["description"] == "" || m["short_name"] == "" {
			t.Errorf("metadata.csv row %d (%s): unit, description and short name are required", i+2, m["metric_name"])
		}
		if !slices.Contains([]string{"-1", "0", "1"}, m["orientation"]) {
			t.Errorf("metadata.csv row %d: orientation %q", i+2, m["orientation"])
		}
		if _, dup := out[m["metric_name"]]; dup {
			t.Errorf("metadata.csv: %s listed twice", m["metric_name"])
		}
		out[m["metric_name"]] = m
	}
	return out
}

func TestMetadataCSVMatchesRun(t *testing.T) {
	metrics, _ := sent(t)
	meta := metadataCSV(t)
	for name, typ := range metrics {
		if meta[name] == nil {
			t.Errorf("the check sends %s, metadata.csv does not list it", name)
		} else if meta[name]["metric_type"] != typ {
			t.Errorf("metadata.csv: %s is %q, the check sends a %s", name, meta[name]["metric_type"], typ)
		}
	}
	for name := range meta {
		if _, ok := metrics[name]; !ok {
			t.Errorf("metadata.csv lists %s, which the check does not send", name)
		}
	}
}

type manifestV2 struct {
	ManifestVersion string `json:"manifest_version"`
	AppUUID         string `json:"app_uuid"`
	AppID           string `json:"app_id"`
	Tile            struct {
		Overview, Configuration, Support, Changelog, Description, Title string
		ClassifierTags                                                  []string `json:"classifier_tags"`
	} `json:"tile"`
	Assets struct {
		Integration struct {
			SourceTypeName string `json:"source_type_name"`
			Metrics        struct {
				Prefix       string `json:"prefix"`
				Check        string `json:"check"`
				MetadataPath string `json:"metadata_path"`
			} `json:"metrics"`
			ServiceChecks struct {
				MetadataPath string `json:"metadata_path"`
			} `json:"service_checks"`
		} `json:"integration"`
		Dashboards map[string]string `json:"dashboards"`
		Monitors   map[string]string `json:"monitors"`
	} `json:"assets"`
	Author struct {
		Name string `json:"name"`
	} `json:"author"`
}

func TestManifest(t *testing.T) {
	metrics, _ := sent(t)
	var m manifestV2
	readJSON(t, "manifest.json", &m)
	in := m.Assets.Integration
	switch {
	case m.ManifestVersion != "2.0.0":
		t.Errorf("manifest_version %q, want 2.0.0", m.ManifestVersion)
	case !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(m.AppUUID):
		t.Errorf("app_uuid %q is not a v4 UUID", m.AppUUID)
	case m.AppID == "" || m.Tile.Title == "" || m.Tile.Description == "" || len(m.Tile.ClassifierTags) == 0 || m.Author.Name == "":
		t.Errorf("app_id, tile title, description, classifier_tags and author name are required: %+v", m)
	case in.SourceTypeName == "" || in.Metrics.Prefix == "":
		t.Errorf("assets.integration needs source_type_name and metrics.prefix: %+v", in)
	case in.Metrics.MetadataPath != "metadata.csv" || in.ServiceChecks.MetadataPath != "assets/service_checks.json":
		t.Errorf("metadata paths %q %q", in.Metrics.MetadataPath, in.ServiceChecks.MetadataPath)
	}
	// The check metric tells Datadog the integration reports: it must be
	// sent on every run, whatever the traffic.
	if _, ok := metrics[in.Metrics.Check]; !ok || !strings.HasPrefix(in.Metrics.Check, in.Metrics.Prefix) {
		t.Errorf("metrics.check %q is not a metric the check sends under prefix %q", in.Metrics.Check, in.Metrics.Prefix)
	}
	// Tile sections point into README.md and CHANGELOG.md.
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{m.Tile.Overview, m.Tile.Configuration, m.Tile.Support} {
		file, anchor, _ := strings.Cut(ref, "#")
		if file != "README.md" || !regexp.MustCompile(`(?m)^## `+regexp.QuoteMeta(anchor)+`$`).Match(readme) {
			t.Errorf("tile reference %q: no such section in README.md", ref)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, m.Tile.Changelog)); err != nil {
		t.Errorf("tile changelog: %v", err)
	}
	// Every dashboard and monitor file is listed, and every listed one exists.
	for dir, listed := range map[string]map[string]string{"assets/dashboards": m.Assets.Dashboards, "assets/monitors": m.Assets.Monitors} {
		files, _ := filepath.Glob(filepath.Join(repoRoot, dir, "*.json"))
		var have, want []string
		for _, f := range files {
			have = append(have, strings.TrimPrefix(filepath.ToSlash(f), repoRoot+"/"))
		}
		for _, p := range listed {
			want = append(want, p)
		}
		sort.Strings(have)
		sort.Strings(want)
		if len(want) == 0 || !slices.Equal(have, want) {
			t.Errorf("%s holds %v, manifest.json lists %v", dir, have, want)
		}
	}
}

func TestServiceChecksJSON(t *testing.T) {
	_, checks := sent(t)
	var m manifestV2
	readJSON(t, "manifest.json", &m)
	var scs []struct {
		AgentVersion string   `json:"agent_version"`
		Integration  string   `json:"integration"`
		Check        string   `json:"check"`
		Statuses     []string `json:"statuses"`
		Groups       []string `json:"groups"`
		Name         string   `json:"name"`
		Description  string   `json:"description"`
	}
	readJSON(t, "assets/service_checks.json", &scs)
	listed := map[string]bool{}
	for _, sc := range scs {
		listed[sc.Check] = true
		if sc.AgentVersion == "" || sc.Name == "" || sc.Description == "" || len(sc.Statuses) == 0 || len(sc.Groups) == 0 {
			t.Errorf("service check %+v: agent_version, name, description, statuses and groups are required", sc)
		}
		if sc.Integration != m.Assets.Integration.SourceTypeName {
			t.Errorf("service check %s: integration %q, manifest source_type_name %q", sc.Check, sc.Integration, m.Assets.Integration.SourceTypeName)
		}
		for _, s := range sc.Statuses {
			if !slices.Contains([]string{"ok", "warning", "critical", "unknown"}, s) {
				t.Errorf("service check %s: status %q", sc.Check, s)
			}
		}
		if !checks[sc.Check] {
			t.Errorf("service_checks.json lists %s, which the check does not send", sc.Check)
		}
	}
	for c := range checks {
		if !listed[c] {
			t.Errorf("the check sends service check %s, service_checks.json does not list it", c)
		}
	}
}

// metricInQuery finds metric names in Datadog metric queries
// ("avg:system.net.tcp.rtt.avg{$host} by {src}").
var metricInQuery = regexp.MustCompile(`\b(?:avg|sum|min|max|count|p50|p75|p90|p95|p99):([A-Za-z0-9_.]+)\{`)

// serviceCheckInQuery finds the check of a service check monitor query.
var serviceCheckInQuery = regexp.MustCompile(`^"([^"]+)"\.over\(`)

func TestDashboard(t *testing.T) {
	metrics, checks := sent(t)
	meta := metadataCSV(t)
	var d struct {
		Title, Description string
		LayoutType         string `json:"layout_type"`
		TemplateVariables  []struct {
			Name, Prefix string
		} `json:"template_variables"`
		Widgets []json.RawMessage `json:"widgets"`
	}
	readJSON(t, "assets/dashboards/go_metro_overview.json", &d)
	if d.Title == "" || d.Description == "" || (d.LayoutType != "ordered" && d.LayoutType != "free") || len(d.Widgets) == 0 {
		t.Fatalf("dashboard needs title, description, layout_type and widgets")
	}
	vars := map[string]string{}
	for _, v := range d.TemplateVariables {
		vars[v.Name] = v.Prefix
	}
	if vars["host"] != "host" || vars["iface"] != "iface" {
		t.Errorf("template variables %v, want host and iface", d.TemplateVariables)
	}
	keys := sentTagKeys(t)
	for _, v := range d.TemplateVariables {
		if !keys[v.Prefix] {
			t.Errorf("template variable %s: the check sends no %s tag", v.Name, v.Prefix)
		}
	}
	var queries, scChecks []string
	var walk func(raw json.RawMessage, path string)
	walk = func(raw json.RawMessage, path string) {
		var w struct {
			ID         int `json:"id"`
			Definition struct {
				Type     string            `json:"type"`
				Title    string            `json:"title"`
				Content  string            `json:"content"`
				Check    string            `json:"check"`
				Tags     []string          `json:"tags"`
				Widgets  []json.RawMessage `json:"widgets"`
				Requests []struct {
					Queries []struct {
						Query string `json:"query"`
					} `json:"queries"`
				} `json:"requests"`
			} `json:"definition"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		def := w.Definition
		if w.ID == 0 || def.Type == "" || (def.Title == "" && def.Type != "note") {
			t.Errorf("%s: a widget needs an id, a type and a title: %s", path, raw)
		}
		switch def.Type {
		case "group":
			for i, c := range def.Widgets {
				walk(c, path+"/"+def.Title+"["+string(rune('0'+i))+"]")
			}
		case "check_status":
			scChecks = append(scChecks, def.Check)
			if !slices.Contains(def.Tags, "$host") || !slices.Contains(def.Tags, "$iface") {
				t.Errorf("%s: check status %s is not filtered by $host and $iface", path, def.Title)
			}
		case "note":
		default:
			if len(def.Requests) == 0 {
				t.Errorf("%s: %s widget %q has no request", path, def.Type, def.Title)
			}
			for _, r := range def.Requests {
				for _, q := range r.Queries {
					queries = append(queries, q.Query)
					if !strings.Contains(q.Query, "{$host,$iface") {
						t.Errorf("%s: query %q is not filtered by $host and $iface", path, q.Query)
					}
					checkQueryTags(t, path, q.Query, keys)
				}
			}
		}
	}
	for i, w := range d.Widgets {
		walk(w, "widgets["+string(rune('0'+i))+"]")
	}
	named := map[string]bool{}
	for _, q := range queries {
		ms := metricInQuery.FindAllStringSubmatch(q, -1)
		if len(ms) == 0 {
			t.Errorf("query %q names no metric", q)
		}
		for _, m := range ms {
			named[m[1]] = true
			if _, ok := metrics[m[1]]; !ok || meta[m[1]] == nil {
				t.Errorf("dashboard query %q: %s is not a metric the check sends and metadata.csv lists", q, m[1])
			}
		}
	}
	for _, c := range scChecks {
		if !checks[c] {
			t.Errorf("dashboard check status %q is not a service check the check sends", c)
		}
	}
	// What the issues ask the overview to show: RTT, jitter and capture
	// health; RTT by destination service, and a latency matrix of source
	// by destination (issue 19).
	for _, m := range []string{MetricRTTAvg, MetricRTTJitter, MetricKernelDrops, MetricFlowsEvicted, MetricPackets} {
		if !named[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
	for _, want := range []string{
		"avg:" + MetricRTTAvg + "{$host,$iface,$kube_namespace,$kube_service} by {dst_kube_service}",
		"avg:" + MetricRTTAvg + "{$host,$iface,$kube_namespace,$kube_service} by {kube_namespace,kube_service,dst_kube_service}",
	} {
		if !slices.Contains(queries, want) {
			t.Errorf("the dashboard has no query %q", want)
		}
	}
	if !slices.Contains(scChecks, ServiceCheckName) {
		t.Errorf("the dashboard does not show %s", ServiceCheckName)
	}
}

func TestMonitors(t *testing.T) {
	metrics, checks := sent(t)
	meta := metadataCSV(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "assets/monitors/*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no monitors: %v", err)
	}
	date := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	keys := sentTagKeys(t)
	var sawAnomaly, sawCapture, sawDrops, sawService bool
	for _, f := range files {
		rel := strings.TrimPrefix(filepath.ToSlash(f), repoRoot+"/")
		var m struct {
			Version       int
			CreatedAt     string `json:"created_at"`
			LastUpdatedAt string `json:"last_updated_at"`
			Title         string
			Description   string
			Tags          []string
			Definition    struct {
				Name, Type, Query, Message string
				Tags                       []string
				Options                    struct {
					Thresholds map[string]float64 `json:"thresholds"`
				} `json:"options"`
			} `json:"definition"`
		}
		readJSON(t, rel, &m)
		def := m.Definition
		switch {
		case m.Version != 2 || !date.MatchString(m.CreatedAt) || !date.MatchString(m.LastUpdatedAt):
			t.Errorf("%s: version 2, created_at and last_updated_at (YYYY-MM-DD) are required", rel)
		case m.Title == "" || m.Description == "" || len(m.Tags) == 0:
			t.Errorf("%s: title, description and tags are required", rel)
		case def.Name == "" || def.Query == "" || def.Message == "":
			t.Errorf("%s: definition name, query and message are required", rel)
		}
		if _, ok := def.Options.Thresholds["critical"]; !ok {
			t.Errorf("%s: no critical threshold", rel)
		}
		switch def.Type {
		case "query alert":
			ms := metricInQuery.FindAllStringSubmatch(def.Query, -1)
			if len(ms) == 0 {
				t.Errorf("%s: query %q names no metric", rel, def.Query)
			}
			for _, x := range ms {
				if _, ok := metrics[x[1]]; !ok || meta[x[1]] == nil {
					t.Errorf("%s: %s is not a metric the check sends and metadata.csv lists", rel, x[1])
				}
				anomaly := x[1] == MetricRTTAvg && strings.Contains(def.Query, "anomalies(")
				sawAnomaly = sawAnomaly || anomaly
				sawService = sawService || anomaly && strings.Contains(def.Query, "dst_kube_service}")
				sawDrops = sawDrops || x[1] == MetricKernelDrops
			}
			checkQueryTags(t, rel, def.Query, keys)
		case "service check":
			x := serviceCheckInQuery.FindStringSubmatch(def.Query)
			if x == nil || !checks[x[1]] {
				t.Errorf("%s: query %q does not name a service check the check sends", rel, def.Query)
			}
			sawCapture = sawCapture || (x != nil && x[1] == ServiceCheckName && def.Options.Thresholds["critical"] >= 1)
		default:
			t.Errorf("%s: monitor type %q", rel, def.Type)
		}
	}
	if !sawAnomaly || !sawService || !sawCapture || !sawDrops {
		t.Errorf("recommended monitors: RTT above baseline %v, between services %v, %s critical %v, kernel drops %v; want all four",
			sawAnomaly, sawService, ServiceCheckName, sawCapture, sawDrops)
	}
}
