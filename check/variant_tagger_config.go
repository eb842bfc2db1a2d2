//go:build gometro_tagger_checks_config

package gometro

import (
	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	"github.com/DataDog/datadog-agent/comp/core/tagger/types"
)

// checksCardinality is the agent's checks_tag_cardinality: agents from
// 7.65 on removed the tagger's ChecksCardinality method (upstream pull
// request 35266) for a cardinality value that the tagger itself maps to
// the setting, types.ChecksConfigCardinality.
func checksCardinality(tagger.Component) types.TagCardinality { return types.ChecksConfigCardinality }
