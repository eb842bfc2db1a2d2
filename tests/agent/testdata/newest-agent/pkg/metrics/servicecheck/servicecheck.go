// Package servicecheck: service-check statuses.
package servicecheck

// ServiceCheckStatus is a service check's status.
type ServiceCheckStatus int

// The statuses.
const (
	ServiceCheckOK       ServiceCheckStatus = 0
	ServiceCheckWarning  ServiceCheckStatus = 1
	ServiceCheckCritical ServiceCheckStatus = 2
	ServiceCheckUnknown  ServiceCheckStatus = 3
)
