//go:build !gometro_tagger_checks_config

package gometro

import (
	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	"github.com/DataDog/datadog-agent/comp/core/tagger/types"
)

// checksCardinality is the agent's checks_tag_cardinality, which agents
// 7.63 to 7.64 give as a method of the tagger. agent-tags.sh selects this
// file unless the checkout's tagger types have ChecksConfigCardinality.
func checksCardinality(t tagger.Component) types.TagCardinality { return t.ChecksCardinality() }
