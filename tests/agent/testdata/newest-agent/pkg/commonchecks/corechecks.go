// Package commonchecks registers the agent's core checks; agent-workspace.sh
// adds go-metro's registration to this file through the build overlay.
package commonchecks

import (
	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
	corecheckLoader "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
)

// RegisterChecks registers all core checks
func RegisterChecks(store workloadmeta.Component,
	tagger tagger.Component) {
	_ = corecheckLoader.RegisterCheck
}
