package types

// EntityID represents a tagger entity ID.
type EntityID struct {
	prefix EntityIDPrefix
	id     string
}

// NewEntityID builds and returns an EntityID object based on plain string
// prefix and id.
func NewEntityID(prefix EntityIDPrefix, id string) EntityID { return EntityID{prefix, id} }

// EntityIDPrefix represents the prefix of a TagEntity id.
type EntityIDPrefix string

const (
	// ContainerID is the prefix `container_id`
	ContainerID EntityIDPrefix = "container_id"
	// KubernetesPodUID is the prefix `kubernetes_pod_uid`
	KubernetesPodUID EntityIDPrefix = "kubernetes_pod_uid"
)
