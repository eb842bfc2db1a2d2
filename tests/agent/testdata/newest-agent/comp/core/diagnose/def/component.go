// Package diagnose: the result of one diagnosis, as agents 7.65 and later
// define it.
package diagnose

// Status is a diagnosis's result.
type Status int

// The statuses.
const (
	DiagnosisSuccess         Status = 0
	DiagnosisFail            Status = 1
	DiagnosisWarning         Status = 2
	DiagnosisUnexpectedError        = 3
)

// ToString names a status.
func (r Status) ToString(colors bool) string { return "" }

// Diagnosis is one finding of `agent diagnose`.
type Diagnosis struct {
	Status      Status `json:"result"`
	Name        string `json:"name"`
	Diagnosis   string `json:"diagnosis"`
	Category    string `json:"category,omitempty"`
	Description string `json:"description,omitempty"`
	Remediation string `json:"remediation,omitempty"`
	RawError    string `json:"rawerror,omitempty"`
}
