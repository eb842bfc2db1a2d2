// Package id: a check instance's ID.
package id

// ID identifies a check instance.
type ID string
