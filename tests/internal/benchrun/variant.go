// Package benchrun is what the benchmark commands (tests/cmd/benchlive,
// tests/cmd/benchscale) share: the -gometro flag, which names the go-metro
// binaries to measure, each with its own extra settings (variant.go), and
// the capturer process each run starts and stops (capturer.go), and how
// a run reads tcpdump's summary and waits (tcpdump.go).
package benchrun

import (
	"fmt"
	"slices"
	"strings"
)

// Variant is one way of running go-metro: a binary and YAML lines added to
// its configuration.
type Variant struct {
	Label, Bin string
	Init, Inst []string // extra lines of init_config and of the instance
}

// initKeys are the settings that belong to init_config; every other key
// goes to the instance.
var initKeys = []string{"snaplen", "max_flows"}

// List is a repeatable flag of LABEL=BINARY[,KEY=VALUE...].
type List []Variant

func (l *List) String() string { return fmt.Sprint(*l) }

// Set adds the variant s describes.
func (l *List) Set(s string) error {
	label, rest, ok := strings.Cut(s, "=")
	if !ok || label == "" {
		return fmt.Errorf("want LABEL=BINARY[,KEY=VALUE...], got %q", s)
	}
	parts := strings.Split(rest, ",")
	v := Variant{Label: label, Bin: parts[0]}
	for _, kv := range parts[1:] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		line := k + ": " + val
		if slices.Contains(initKeys, k) {
			v.Init = append(v.Init, line)
		} else {
			v.Inst = append(v.Inst, line)
		}
	}
	*l = append(*l, v)
	return nil
}
