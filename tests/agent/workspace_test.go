package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runWorkspace runs check/agent-workspace.sh SRC OUT and returns OUT and,
// when it fails, its output as the error.
func runWorkspace(t *testing.T, src string) (string, error) {
	t.Helper()
	out := t.TempDir()
	script, err := filepath.Abs(filepath.Join("..", "..", "check", "agent-workspace.sh"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(script, src, out).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

// TestAgentWorkspaceScript runs `make agent`'s preparation on a small fake
// checkout holding every go.work form the rewrite must handle, and checks
// what it writes, and that it writes nothing into the checkout.
func TestAgentWorkspaceScript(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"go.work":                        "go 1.23.1\n\ntoolchain go1.23.5\n\nuse (\n\t.\n\t./comp/core\n\tpkg/util\n\t../sibling\n)\n\nuse ./single\n\nreplace example.com/x => ./third_party/x\n",
		"pkg/commonchecks/corechecks.go": registerChecks("store workloadmeta.Component, tagger tagger.Component, cfg config.Component"),
	}
	// Every listed module exists (go work use checks them).
	for _, dir := range []string{".", "comp/core", "pkg/util", "../sibling", "single"} {
		files[filepath.Join(dir, "go.mod")] = "module example.com/" + filepath.Base(filepath.Clean(filepath.Join(src, dir))) + "\n\ngo 1.23\n"
	}
	writeFiles(t, src, files)
	out, err := runWorkspace(t, src)
	if err != nil {
		t.Fatalf("agent-workspace.sh: %v", err)
	}
	for name, text := range files {
		if b, _ := os.ReadFile(filepath.Join(src, name)); string(b) != text {
			t.Errorf("the checkout's %s was modified:\n%s", name, b)
		}
	}
	for _, dir := range []string{src, filepath.Join(src, "..", "sibling")} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(src, p)
			if err == nil && !d.IsDir() && files[rel] == "" {
				t.Errorf("the script wrote %s into the checkout", p)
			}
			return nil
		})
	}

	work, _ := os.ReadFile(filepath.Join(out, "go.work"))
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	for _, want := range []string{
		"go 1.23.1\n\ntoolchain go1.23.5\n", // as the checkout has them
		"\t" + src + "\n",
		"\t" + src + "/comp/core\n",
		"\t" + src + "/pkg/util\n",
		"\t" + src + "/../sibling\n",
		"\t" + src + "/single\n", // go work use merges use blocks
		"example.com/x => " + src + "/third_party/x\n",
		root + "\n",
		root + "/check\n",
	} {
		if !strings.Contains(string(work), want) {
			t.Errorf("generated go.work lacks %q:\n%s", want, work)
		}
	}

	over, _ := os.ReadFile(filepath.Join(out, "corechecks.go.overlay"))
	wantOver := strings.Replace(files["pkg/commonchecks/corechecks.go"], "import (\n", "import (\n\tgometro \"github.com/gometro/go-metro/check\"\n", 1)
	wantOver = strings.Replace(wantOver, "nil)\n}\n", "nil)\n\tcorecheckLoader.RegisterCheck(gometro.CheckName, gometro.Factory(store, tagger))\n}\n", 1)
	if string(over) != wantOver {
		t.Errorf("overlay:\n%s\nwant:\n%s", over, wantOver)
	}
	var ov struct{ Replace map[string]string }
	b, _ := os.ReadFile(filepath.Join(out, "overlay.json"))
	if err := json.Unmarshal(b, &ov); err != nil || ov.Replace[filepath.Join(src, "pkg/commonchecks/corechecks.go")] != filepath.Join(out, "corechecks.go.overlay") {
		t.Errorf("overlay.json %s (%v)", b, err)
	}

	// A checkout older than go-metro's go line: go work use would raise
	// the workspace's, and the script refuses.
	files["go.work"] = "go 1.22\n\nuse .\n"
	old := writeTree(t, map[string]string{"go.work": files["go.work"], "go.mod": "module example.com/old\n\ngo 1.22\n",
		"pkg/commonchecks/corechecks.go": files["pkg/commonchecks/corechecks.go"]})
	if _, err := runWorkspace(t, old); err == nil || !strings.Contains(err.Error(), "raised the workspace's go line from 1.22 to") {
		t.Errorf("a checkout at go 1.22: %v", err)
	}

	// A checkout whose RegisterChecks does not receive both components
	// cannot register go-metro: a clear error.
	files["go.work"] = "go 1.23.1\n\nuse .\n"
	noTagger := writeTree(t, map[string]string{"go.work": files["go.work"], "go.mod": "module example.com/nt\n\ngo 1.23\n",
		"pkg/commonchecks/corechecks.go": registerChecks("store workloadmeta.Component, _ tagger.Component")})
	if _, err := runWorkspace(t, noTagger); err == nil || !strings.Contains(err.Error(), "tagger.Component") {
		t.Errorf("RegisterChecks without a named tagger: %v", err)
	}

	// Not a checkout: a clear error.
	if _, err := runWorkspace(t, t.TempDir()); err == nil || !strings.Contains(err.Error(), "a datadog-agent checkout") {
		t.Errorf("a directory without go.work: %v", err)
	}
}

// registerChecks is a corechecks.go whose RegisterChecks takes params, the
// two components imported under their package names.
func registerChecks(params string) string {
	return "package commonchecks\n\nimport (\n" +
		"\t\"github.com/DataDog/datadog-agent/comp/core/tagger/def\"\n" +
		"\tworkloadmeta \"github.com/DataDog/datadog-agent/comp/core/workloadmeta/def\"\n" +
		"\tcorecheckLoader \"example.com/corechecks\"\n)\n\n" +
		"// RegisterChecks registers all core checks\nfunc RegisterChecks(" + params + ") {\n\tcorecheckLoader.RegisterCheck(\"cpu\", nil)\n}\n\nfunc other() {\n}\n"
}

// The registration passes RegisterChecks' own parameters, found by type
// under the names the file imports the packages by, in each form the
// signature takes: 7.63's one line, 7.68's several, names shared by one
// type, parameters go-metro does not use.
func TestRegistrationParameters(t *testing.T) {
	for _, tc := range []struct{ imports, params, want string }{
		{"", "store workloadmeta.Component, tagger tagger.Component, cfg config.Component, telemetry telemetry.Component", "Factory(store, tagger)"},
		{"", "store workloadmeta.Component, tagger tagger.Component, cfg config.Component,\n\ttelemetry telemetry.Component, rcClient rcclient.Component, flare flare.Component", "Factory(store, tagger)"},
		{"", "wm workloadmeta.Component, _ workloadfilter.Component, a, tg tagger.Component,\n\tcfg config.Component", "Factory(wm, tg)"},
		{"\ttaggr \"github.com/DataDog/datadog-agent/comp/core/tagger/def\"\n\twmeta \"github.com/DataDog/datadog-agent/comp/core/workloadmeta/def\"\n",
			"s wmeta.Component, t taggr.Component", "Factory(s, t)"},
	} {
		text := registerChecks(tc.params)
		if tc.imports != "" {
			text = strings.Replace(text, "\t\"github.com/DataDog/datadog-agent/comp/core/tagger/def\"\n\tworkloadmeta \"github.com/DataDog/datadog-agent/comp/core/workloadmeta/def\"\n", tc.imports, 1)
		}
		src := writeTree(t, map[string]string{"go.work": "go 1.23.1\n\nuse .\n", "go.mod": "module example.com/r\n\ngo 1.23\n",
			"pkg/commonchecks/corechecks.go": text})
		out, err := runWorkspace(t, src)
		if err != nil {
			t.Errorf("%s: %v", tc.params, err)
			continue
		}
		over, _ := os.ReadFile(filepath.Join(out, "corechecks.go.overlay"))
		if want := "\tcorecheckLoader.RegisterCheck(gometro.CheckName, gometro." + tc.want + ")\n}\n"; !strings.Contains(string(over), want) {
			t.Errorf("%s: overlay lacks %q:\n%s", tc.params, want, over)
		}
	}
}
