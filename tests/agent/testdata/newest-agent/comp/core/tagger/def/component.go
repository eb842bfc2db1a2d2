// Package tagger: the tags of the agent's entities, as the newest agents
// define the parts go-metro uses (no ChecksCardinality method: the
// cardinality types.ChecksConfigCardinality stands for the setting).
package tagger

import "github.com/DataDog/datadog-agent/comp/core/tagger/types"

// Component is the component type.
type Component interface {
	Tag(entityID types.EntityID, cardinality types.TagCardinality) ([]string, error)
}
