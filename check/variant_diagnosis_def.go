//go:build gometro_diagnose_def

package gometro

import (
	diagnose "github.com/DataDog/datadog-agent/comp/core/diagnose/def"

	"github.com/gometro/go-metro/rttcheck"
)

// The diagnosis types of agents 7.65 and later, in comp/core/diagnose/def,
// where the result is the field Status (diagnose.Result is another type
// there, a suite's result). agent-tags.sh selects this file when the
// checkout has that package.
type (
	agentDiagnosis       = diagnose.Diagnosis
	agentDiagnosisStatus = diagnose.Status
)

const (
	diagnosisSuccess         = diagnose.DiagnosisSuccess
	diagnosisFail            = diagnose.DiagnosisFail
	diagnosisWarning         = diagnose.DiagnosisWarning
	diagnosisUnexpectedError = agentDiagnosisStatus(diagnose.DiagnosisUnexpectedError) // untyped there
)

func newAgentDiagnosis(status agentDiagnosisStatus, category string, d rttcheck.Diagnosis) agentDiagnosis {
	return diagnose.Diagnosis{
		Status:      status,
		Category:    category,
		Name:        d.Name,
		Diagnosis:   d.Diagnosis,
		Remediation: d.Remediation,
		RawError:    d.RawError,
	}
}

// statusOf is the field that holds a diagnosis's result.
func statusOf(d agentDiagnosis) agentDiagnosisStatus { return d.Status }
