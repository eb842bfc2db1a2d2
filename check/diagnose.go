package gometro

import (
	"github.com/DataDog/datadog-agent/pkg/diagnose/diagnosis"

	"github.com/gometro/go-metro/rttcheck"
)

// GetDiagnoses answers `agent diagnose` (suite check-datadog) for this
// instance: rttcheck.Check.Diagnose's findings (permission, interface,
// capture, kernel filter, drops, local addresses, hosts, traffic), each
// failure with its remediation. The running agent calls it from its API
// goroutine while the check runs on schedule; `agent diagnose --local`
// calls it right after Configure. Both are safe.
func (c *Check) GetDiagnoses() ([]diagnosis.Diagnosis, error) {
	found := c.logic.Diagnose()
	out := make([]diagnosis.Diagnosis, 0, len(found))
	for _, d := range found {
		out = append(out, diagnosis.Diagnosis{
			Result: agentResult(d.Result),
			// The instance ID, as `agent status` shows it, tells apart two
			// instances on one interface.
			Category:    string(c.ID()),
			Name:        d.Name,
			Diagnosis:   d.Diagnosis,
			Remediation: d.Remediation,
			RawError:    d.RawError,
		})
	}
	return out, nil
}

// agentResult maps results by name, as agentStatus does for service checks.
func agentResult(r rttcheck.DiagnosisResult) diagnosis.Result {
	switch r {
	case rttcheck.DiagnosisPass:
		return diagnosis.DiagnosisSuccess
	case rttcheck.DiagnosisFail:
		return diagnosis.DiagnosisFail
	case rttcheck.DiagnosisWarning:
		return diagnosis.DiagnosisWarning
	}
	return diagnosis.DiagnosisUnexpectedError
}
