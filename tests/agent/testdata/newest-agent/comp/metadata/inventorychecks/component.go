// Package inventorychecks: the inventory metadata of check instances.
package inventorychecks

// Component holds per-instance metadata.
type Component interface {
	Set(instanceID string, key string, value interface{})
	GetInstanceMetadata(instanceID string) map[string]interface{}
}
