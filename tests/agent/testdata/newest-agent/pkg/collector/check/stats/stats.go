// Package stats: what a sender submitted in one run.
package stats

// SenderStats counts one run's submissions.
type SenderStats struct{}
