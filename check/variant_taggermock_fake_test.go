//go:build test && !gometro_taggermock_impl

package gometro

import (
	"testing"

	"github.com/DataDog/datadog-agent/comp/core/config"
	taggermock "github.com/DataDog/datadog-agent/comp/core/tagger/mock"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
)

// newTaggerMock is the tagger mock where agents up to 7.64 keep it, a fake
// over a tag store (comp/core/tagger/mock); its checks cardinality is low.
// Newer ones moved it (variant_taggermock_impl_test.go).
func newTaggerMock(*testing.T, config.Component, workloadmeta.Component) taggermock.Mock {
	return taggermock.New().Comp
}
