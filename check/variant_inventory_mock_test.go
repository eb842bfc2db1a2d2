//go:build test && gometro_inventorychecks_mock

package gometro

import (
	"github.com/DataDog/datadog-agent/comp/metadata/inventorychecks"
	inventorychecksmock "github.com/DataDog/datadog-agent/comp/metadata/inventorychecks/mock"
)

// newInventoryMock is the inventorychecks mock in its own package, where
// the newest agents keep it.
func newInventoryMock() inventorychecks.Component { return inventorychecksmock.NewMock().Comp }
