package gometro

import (
	"github.com/DataDog/datadog-agent/pkg/collector/check"

	"github.com/gometro/go-metro/rttcheck"
)

// Version is go-metro's version, shown next to the check's name in
// `agent status` ("go-metro (0.1.0-dev)").
func (c *Check) Version() string { return rttcheck.Version }

// setInventory publishes the instance's inventory metadata (interface,
// capture backend, snaplen, ring size, kernel filter size, max_flows,
// go-metro's version): `metadata:` lines under the instance in `agent
// status`, and in flares and the inventories payload. Called on every Run:
// the filter changes when hosts re-resolve, and the component only
// refreshes its payload when a value changed. Outside the agent's run and
// check commands (tests) there is no inventory component: nothing to do.
func (c *Check) setInventory() {
	inv, err := check.GetInventoryChecksContext()
	if err != nil {
		return
	}
	id := string(c.ID())
	for k, v := range c.logic.Inventory() {
		inv.Set(id, k, v)
	}
}
