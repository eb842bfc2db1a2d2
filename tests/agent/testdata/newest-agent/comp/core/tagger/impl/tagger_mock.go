// Package taggerimpl: the tagger mock's constructor, which the newest
// agents keep here (comp/core/tagger/fx-mock provides it); its
// dependencies (config, workloadmeta, log, telemetry) are left out.
package taggerimpl

import taggermock "github.com/DataDog/datadog-agent/comp/core/tagger/mock"

// MockRequires is a struct containing the required components for the mock.
type MockRequires struct{}

// MockProvides is a struct containing the mock.
type MockProvides struct {
	Comp taggermock.Mock
}

// NewMock instantiates a new fakeTagger.
func NewMock(req MockRequires) MockProvides { return MockProvides{} }
