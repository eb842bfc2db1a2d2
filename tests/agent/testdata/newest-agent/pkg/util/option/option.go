// Package option: a value that may be absent.
package option

// Option holds a T or nothing.
type Option[T any] struct {
	value T
	set   bool
}

// New returns an Option holding v.
func New[T any](v T) Option[T] { return Option[T]{value: v, set: true} }
