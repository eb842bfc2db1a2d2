// Package mock: the interface of the tagger's mock, as the newest agents
// define it.
package mock

import (
	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	"github.com/DataDog/datadog-agent/comp/core/tagger/types"
)

// Mock implements mock-specific methods for the tagger component.
type Mock interface {
	tagger.Component

	// SetTags allows to set tags in the mock fake tagger
	SetTags(entityID types.EntityID, source string, low, orch, high, std []string)
}
