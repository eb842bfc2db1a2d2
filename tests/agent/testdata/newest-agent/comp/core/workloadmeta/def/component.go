// Package workloadmeta: the store of this host's workloads (containers,
// pods, ...), as the newest agents define the parts go-metro uses.
package workloadmeta

// Component is the component type.
type Component interface {
	// Subscribe subscribes the caller to events representing changes to the
	// store, limited to events matching the filter.
	Subscribe(name string, priority SubscriberPriority, filter *Filter) chan EventBundle

	// Unsubscribe closes the EventBundle channel.
	Unsubscribe(ch chan EventBundle)
}
