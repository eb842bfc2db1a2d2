package rttcheck

import (
	"strings"
	"testing"
)

// TestConfigMessages: values echoed in messages are capped, and merge keys
// in a section given as text are applied as yaml.v2 applies them to maps.
func TestConfigMessages(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	tests := []struct {
		name, instance, init string
		wantErr              string
		wantIface            string
	}{
		{name: "1 MB interface", instance: "interface: " + huge + "\nips: [10.0.0.1]",
			wantErr: `instance "` + huge[:maxEcho] + `"... (1048576 bytes): interface: "` + huge[:maxEcho] + `"... (1048576 bytes) is not an interface name: longer than 15 bytes`},
		{name: "1 MB host", instance: "interface: eth0\nhosts: [" + huge + "]", wantErr: `hosts[0]: "` + huge[:maxEcho] + `"... (1048576 bytes) is not a host name`},
		{name: "1 MB duration", instance: "interface: eth0\nips: [10.0.0.1]\nsample_duration: " + huge, wantErr: `sample_duration: "` + huge[:maxEcho] + `"... (1048576 bytes) is not a duration`},
		{name: "1 MB log level", init: "log_level: " + huge, instance: "interface: eth0\nips: [10.0.0.1]", wantErr: `log_level: "` + huge[:maxEcho] + `"... (1048576 bytes) is not a log level`},
		{name: "merge key", instance: "<<: {interface: lo, all_remote_hosts: true}\ntags: [a]", wantIface: "lo"},
		{name: "merge key, written key wins", instance: "<<: {interface: lo, all_remote_hosts: true}\ninterface: eth0", wantIface: "eth0"},
		{name: "merge key list", instance: "<<: [{interface: lo}, {all_remote_hosts: true}]", wantIface: "lo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.instance), []byte(tc.init), -1)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %.400v\nwant %.400q", err, tc.wantErr)
				}
				if len(err.Error()) > 400 {
					t.Errorf("message of %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Instance.Interface != tc.wantIface || len(cfg.Warnings) != 0 {
				t.Errorf("interface %q, warnings %q", cfg.Instance.Interface, cfg.Warnings)
			}
		})
	}
}
