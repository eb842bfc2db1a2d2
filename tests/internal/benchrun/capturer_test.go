package benchrun

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestCapturerStop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  string
		wantErr string // "": none
	}{
		{"ends on SIGINT", "echo ready; exec sleep 60", ""},
		{"exits with a status on SIGINT", "trap 'exit 3' INT; echo ready; sleep 60 & wait", ""},
		{"ignores SIGINT", "trap '' INT; echo ready; exec sleep 60", "did not stop on SIGINT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			c, err := StartCapturer((*exec.Cmd).Start, cmd, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			// The shell has set its trap once it says so.
			if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			if c.Exited() {
				t.Fatal("exited before Stop")
			}
			err = c.Stop()
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Stop() = %v, want %q", err, tc.wantErr)
			}
			if !c.Exited() {
				t.Error("not exited after Stop")
			}
			if again := c.Stop(); (again == nil) != (err == nil) {
				t.Errorf("second Stop() = %v, first %v", again, err)
			}
		})
	}
}
