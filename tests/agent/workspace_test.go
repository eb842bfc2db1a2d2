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
		"go.work": "go 1.23.1\n\ntoolchain go1.23.5\n\nuse (\n\t.\n\t./comp/core\n\tpkg/util\n\t../sibling\n)\n\nuse ./single\n\nreplace example.com/x => ./third_party/x\n",
		"pkg/commonchecks/corechecks.go": "package commonchecks\n\nimport (\n\tcorecheckLoader \"example.com/corechecks\"\n)\n\n" +
			"// RegisterChecks registers all core checks\nfunc RegisterChecks() {\n\tcorecheckLoader.RegisterCheck(\"cpu\", nil)\n}\n\nfunc other() {\n}\n",
	}
	// Every listed module exists (go work use checks them).
	for _, dir := range []string{".", "comp/core", "pkg/util", "../sibling", "single"} {
		files[filepath.Join(dir, "go.mod")] = "module example.com/" + filepath.Base(filepath.Clean(filepath.Join(src, dir))) + "\n\ngo 1.23\n"
	}
	for name, text := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
	wantOver = strings.Replace(wantOver, "nil)\n}\n", "nil)\n\tcorecheckLoader.RegisterCheck(gometro.CheckName, gometro.Factory())\n}\n", 1)
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

	// Not a checkout: a clear error.
	if _, err := runWorkspace(t, t.TempDir()); err == nil || !strings.Contains(err.Error(), "a datadog-agent checkout") {
		t.Errorf("a directory without go.work: %v", err)
	}
}
