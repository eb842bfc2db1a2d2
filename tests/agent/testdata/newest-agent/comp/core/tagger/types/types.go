// Package types: the tagger's entity IDs and cardinalities, as the newest
// agents define them.
package types

// TagCardinality indicates the cardinality-level of a tag.
type TagCardinality int

// List of possible container cardinality
const (
	LowCardinality TagCardinality = iota
	OrchestratorCardinality
	HighCardinality
	NoneCardinality
	// ChecksConfigCardinality is an internal cardinality that represents the checks_tag_cardinality setting.
	ChecksConfigCardinality
)

// StringToTagCardinality extracts a TagCardinality from a string.
func StringToTagCardinality(c string) (TagCardinality, error) { return LowCardinality, nil }
