package gometro

import (
	"github.com/gometro/go-metro/rttcheck"
)

// GetDiagnoses answers `agent diagnose` (suite check-datadog) for this
// instance: rttcheck.Check.Diagnose's findings (permission, interface,
// capture, kernel filter, drops, local addresses, hosts, traffic), each
// failure with its remediation. The running agent calls it from its API
// goroutine while the check runs on schedule; `agent diagnose --local`
// calls it right after Configure. Both are safe. The agent's diagnosis type
// depends on its version (variant_diagnosis_*.go).
func (c *Check) GetDiagnoses() ([]agentDiagnosis, error) {
	found := c.logic.Diagnose()
	out := make([]agentDiagnosis, 0, len(found))
	for _, d := range found {
		// The instance ID, as `agent status` shows it, tells apart two
		// instances on one interface.
		out = append(out, newAgentDiagnosis(agentResult(d.Result), string(c.ID()), d))
	}
	return out, nil
}

// agentResult maps results by name, as agentStatus does for service
// checks.
func agentResult(r rttcheck.DiagnosisResult) agentDiagnosisStatus {
	switch r {
	case rttcheck.DiagnosisPass:
		return diagnosisSuccess
	case rttcheck.DiagnosisFail:
		return diagnosisFail
	case rttcheck.DiagnosisWarning:
		return diagnosisWarning
	}
	return diagnosisUnexpectedError
}
