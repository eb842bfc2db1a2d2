// Package mock: the inventorychecks mock, in its own package in the newest
// agents.
package mock

import "github.com/DataDog/datadog-agent/comp/metadata/inventorychecks"

// MockProvides wraps the mock component.
type MockProvides struct{ Comp inventorychecks.Component }

// NewMock returns a mock component.
func NewMock() MockProvides { return MockProvides{} }
