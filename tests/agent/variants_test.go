package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoFile is a path from the repository's root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// agentTags runs check/agent-tags.sh with args and returns its output, or
// its output as the error.
func agentTags(t *testing.T, args ...string) (string, error) {
	t.Helper()
	b, err := exec.Command(repoFile(t, "check/agent-tags.sh"), args...).CombinedOutput()
	return strings.TrimSpace(string(b)), err
}

// writeTree writes files (path -> text) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return dir
}

// writeFiles writes files (path -> text) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The variant and the toolchain come from what the checkout declares, for
// each form the agent's API has had, and an unknown form is an error that
// names the file to look at.
func TestAgentTags(t *testing.T) {
	const (
		pkgDiagnosis = "package diagnosis\n"
		defDiagnosis = "package diagnose\n\ntype Diagnosis struct {\n\tStatus Status `json:\"result\"`\n}\n"
		source       = "type Check interface {\n\tConfigure(senderManger sender.SenderManager, integrationConfigDigest uint64, config, initConfig integration.Data, source string) error\n}\n"
		provider     = "type Check interface {\n\tConfigure(senderManager sender.SenderManager, integrationConfigDigest uint64, config, initConfig integration.Data, source, provider string) error\n}\n"
		// The tagger: 7.63's method and fake mock, 7.68's cardinality value
		// and taggerimpl mock.
		taggerMethod = "type Component interface {\n\tChecksCardinality() types.TagCardinality\n}\n"
		taggerValue  = "const (\n\tLowCardinality TagCardinality = iota\n\tChecksConfigCardinality\n)\n"
		taggerImpl   = "package taggerimpl\n\nfunc NewMock(req MockRequires) MockProvides {\n}\n"
	)
	for _, tc := range []struct {
		name          string
		files         map[string]string
		tags, toolTag string
		err           string
	}{
		{name: "7.63", files: map[string]string{
			"go.work": "go 1.23.1\n\ntoolchain go1.23.5\n", "pkg/diagnose/diagnosis/loader.go": pkgDiagnosis,
			"pkg/collector/check/check.go": source, "comp/core/tagger/def/component.go": taggerMethod,
			"comp/core/tagger/mock/fake_tagger.go": "package mock\n", "comp/core/tagger/impl/tagger_mock.go": taggerImpl,
		}, tags: "", toolTag: "go1.23.5"},
		{name: "7.68", files: map[string]string{
			"go.work": "go 1.24.3\n", "comp/core/diagnose/def/component.go": defDiagnosis,
			"pkg/collector/check/check.go": source, "comp/core/tagger/types/types.go": taggerValue, "comp/core/tagger/impl/tagger_mock.go": taggerImpl,
		}, tags: "gometro_diagnose_def gometro_tagger_checks_config gometro_taggermock_impl", toolTag: "go1.24.3"},
		{name: "7.78", files: map[string]string{
			"go.work": "go 1.25.6\n", "comp/core/diagnose/def/component.go": defDiagnosis,
			"pkg/collector/check/check.go": provider, "comp/core/tagger/types/types.go": taggerValue, "comp/core/tagger/impl/tagger_mock.go": taggerImpl,
		}, tags: "gometro_diagnose_def gometro_configure_provider gometro_tagger_checks_config gometro_taggermock_impl", toolTag: "go1.25.6"},
		{name: "newest", files: map[string]string{
			"go.work": "go 1.25.6\n", "comp/core/diagnose/def/component.go": defDiagnosis,
			"pkg/collector/check/check.go": provider, "comp/metadata/inventorychecks/mock/mock.go": "package mock\n",
			"comp/core/tagger/types/types.go": taggerValue, "comp/core/tagger/impl/tagger_mock.go": taggerImpl,
		}, tags: "gometro_diagnose_def gometro_configure_provider gometro_inventorychecks_mock gometro_tagger_checks_config gometro_taggermock_impl", toolTag: "go1.25.6"},
		{name: "unknown Configure", files: map[string]string{
			"go.work": "go 1.26.0\n", "comp/core/diagnose/def/component.go": defDiagnosis,
			"pkg/collector/check/check.go": "type Check interface {\n\tConfigure(ctx ConfigureContext) error\n}\n",
		}, err: "check.Check.Configure in "},
		{name: "unknown tagger", files: map[string]string{
			"go.work": "go 1.26.0\n", "comp/core/diagnose/def/component.go": defDiagnosis,
			"pkg/collector/check/check.go": provider, "comp/core/tagger/def/component.go": "type Component interface {\n\tTag() []string\n}\n",
		}, err: "neither types.ChecksConfigCardinality"},
		{name: "no diagnosis types", files: map[string]string{
			"go.work": "go 1.26.0\n", "pkg/collector/check/check.go": source,
		}, err: "neither pkg/diagnose/diagnosis nor"},
		{name: "not a checkout", files: map[string]string{"README.md": "x\n"}, err: "go.work not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, tc.files)
			tags, err := agentTags(t, dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(tags, tc.err) {
					t.Fatalf("agent-tags.sh: %v %q, want an error containing %q", err, tags, tc.err)
				}
				return
			}
			if err != nil || tags != tc.tags {
				t.Errorf("tags %q (%v), want %q", tags, err, tc.tags)
			}
			if tool, err := agentTags(t, "--toolchain", dir); err != nil || tool != tc.toolTag {
				t.Errorf("toolchain %q (%v), want %q", tool, err, tc.toolTag)
			}
		})
	}
}

// supportedAgent is one row of README.md's table of supported agents.
type supportedAgent struct {
	versions, toolchain, tags string
}

// readmeAgents reads README.md's table of supported agents: the rows whose
// first cell is a version, their toolchain (the first goX.Y.Z of the second
// cell) and variant tags (the third cell's code spans).
func readmeAgents(t *testing.T) map[string]supportedAgent {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]supportedAgent{}
	toolchain := regexp.MustCompile(`go1\.\d+\.\d+`)
	code := regexp.MustCompile("`([^`]*)`")
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "7.") {
			continue
		}
		var tags []string
		for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
			tags = append(tags, m[1])
		}
		first := strings.Fields(cells[1])[0]
		rows[first] = supportedAgent{versions: strings.TrimSpace(cells[1]), toolchain: toolchain.FindString(cells[2]), tags: strings.Join(tags, " ")}
	}
	return rows
}

// README.md's table promises, for each agent line, the toolchain and the
// variant make agent picks. Each row's example tree (the two in ../shared,
// the stand-in for the newest API in testdata) must give exactly that.
func TestVariantsMatchREADME(t *testing.T) {
	rows := readmeAgents(t)
	for _, tc := range []struct{ row, tree string }{
		{"7.63", "../shared/datadog-agent"},
		{"7.65", "../shared/datadog-agent-7.68"},
		{"7.78", "tests/agent/testdata/newest-agent"},
	} {
		t.Run(tc.row, func(t *testing.T) {
			want, ok := rows[tc.row]
			if !ok {
				t.Fatalf("README.md's table of supported agents has no row starting with %s: %v", tc.row, rows)
			}
			tree := repoFile(t, tc.tree)
			if _, err := os.Stat(filepath.Join(tree, "go.work")); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("no agent tree at %s and CI is set", tree)
				}
				t.Skipf("no agent tree at %s", tree)
			}
			if tags, err := agentTags(t, tree); err != nil || tags != want.tags {
				t.Errorf("%s: agent-tags.sh says %q (%v), README.md's row %q says %q", tc.tree, tags, err, want.versions, want.tags)
			}
			if tool, err := agentTags(t, "--toolchain", tree); err != nil || tool != want.toolchain {
				t.Errorf("%s: pins %q (%v), README.md's row %q says %q", tc.tree, tool, err, want.versions, want.toolchain)
			}
		})
	}
}

// check/ builds into an agent with the newest check API (7.78 and later)
// through make agent's own steps, with the toolchain those agents pin. The
// API there is testdata/newest-agent (its README): a change of the agent's
// API, copied there, fails this build.
func TestNewestAgentAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds with the newest agent's toolchain")
	}
	bin := filepath.Join(t.TempDir(), "agent")
	cmd := exec.Command("make", "--no-print-directory", "agent",
		"AGENT_SRC="+repoFile(t, "tests/agent/testdata/newest-agent"), "AGENT_WORK="+t.TempDir(), "AGENT_BIN="+bin,
		"AGENT_TAGS=", "AGENT_LDFLAGS=", "AGENT_PGO=")
	cmd.Dir = repoFile(t, ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make agent against the newest API: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
}
