// Command agent stands in for the agent's main: it registers the core
// checks, go-metro's among them, as the real one does.
package main

import "github.com/DataDog/datadog-agent/pkg/commonchecks"

func main() { commonchecks.RegisterChecks(nil, nil) }
