// Package commonchecks registers the agent's core checks; agent-workspace.sh
// adds go-metro's registration to this file through the build overlay.
package commonchecks

import (
	corecheckLoader "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
)

// RegisterChecks registers all core checks
func RegisterChecks() {
	_ = corecheckLoader.RegisterCheck
}
