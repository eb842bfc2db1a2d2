package workloadmeta

// Filter allows a subscriber to filter events by entity kind, event source,
// and event type.
type Filter struct{}

// FilterBuilder is used to build a filter object for subscribers.
type FilterBuilder struct{}

// NewFilterBuilder creates and returns a new filter builder.
func NewFilterBuilder() *FilterBuilder { return &FilterBuilder{} }

// AddKind adds a specific kind to the built filter.
func (fb *FilterBuilder) AddKind(kind Kind) *FilterBuilder { return fb }

// Build builds the filter and returns it.
func (fb *FilterBuilder) Build() *Filter { return &Filter{} }
