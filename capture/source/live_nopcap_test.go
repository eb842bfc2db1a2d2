//go:build !pcap

package source

import (
	"errors"
	"strings"
	"testing"
)

func TestOpenLivePcapWithoutTag(t *testing.T) {
	_, err := OpenLive("pcap", Options{Interface: "lo"})
	if !errors.Is(err, ErrUnsupportedBackend) || !strings.Contains(err.Error(), "-tags pcap") {
		t.Errorf("err = %v, want ErrUnsupportedBackend telling to rebuild with -tags pcap", err)
	}
}
