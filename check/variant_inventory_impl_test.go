//go:build test && !gometro_inventorychecks_mock

package gometro

import (
	"github.com/DataDog/datadog-agent/comp/metadata/inventorychecks"
	"github.com/DataDog/datadog-agent/comp/metadata/inventorychecks/inventorychecksimpl"
)

// newInventoryMock is the inventorychecks mock where agents up to 7.7x keep
// it; newer ones moved it (variant_inventory_mock_test.go).
func newInventoryMock() inventorychecks.Component { return inventorychecksimpl.NewMock().Comp }
