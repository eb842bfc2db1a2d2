package workloadmeta

// Kind is the kind of an entity.
type Kind string

// Defined Kinds
const (
	KindContainer     Kind = "container"
	KindKubernetesPod Kind = "kubernetes_pod"
)

// EventType is the type of an event (set or unset).
type EventType int

const (
	// EventTypeAll matches any event type.
	EventTypeAll EventType = iota
	// EventTypeSet indicates that an entity has been added or updated.
	EventTypeSet
	// EventTypeUnset indicates that an entity has been removed.
	EventTypeUnset
)

// Entity represents a single unit of work being done that is of interest to
// the agent.
type Entity interface {
	GetID() EntityID
}

// EntityID represents the ID of an Entity.
type EntityID struct {
	Kind Kind
	ID   string
}

// EntityMeta represents generic metadata about an Entity.
type EntityMeta struct {
	Name        string
	Namespace   string
	Annotations map[string]string
	Labels      map[string]string
}

// ContainerState is the state of a container.
type ContainerState struct {
	Running bool
}

// Container is an Entity representing a containerized workload.
type Container struct {
	EntityID
	EntityMeta
	NetworkIPs map[string]string
	State      ContainerState
}

// GetID implements Entity#GetID.
func (c Container) GetID() EntityID { return c.EntityID }

// KubernetesPod is an Entity representing a Kubernetes Pod.
type KubernetesPod struct {
	EntityID
	EntityMeta
	Phase string
	IP    string
}

// GetID implements Entity#GetID.
func (p KubernetesPod) GetID() EntityID { return p.EntityID }

// Event represents a change to an entity.
type Event struct {
	Type   EventType
	Entity Entity
}

// SubscriberPriority is a priority for subscribers to the store.
type SubscriberPriority int

const (
	// TaggerPriority is the priority for the Tagger.
	TaggerPriority SubscriberPriority = iota
	// ConfigProviderPriority is the priority for the AD Config Provider.
	ConfigProviderPriority SubscriberPriority = iota
	// NormalPriority should be used by subscribers on which other components
	// do not depend.
	NormalPriority SubscriberPriority = iota
)

// EventBundle is a collection of events sent to Store subscribers.
type EventBundle struct {
	Events []Event
	Ch     chan struct{}
}

// Acknowledge acknowledges that the subscriber has handled the event.
func (e EventBundle) Acknowledge() {}
