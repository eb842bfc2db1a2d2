//go:build !gometro_diagnose_def

package gometro

import (
	"github.com/DataDog/datadog-agent/pkg/diagnose/diagnosis"

	"github.com/gometro/go-metro/rttcheck"
)

// The diagnosis types of agents 7.63 and 7.64, in pkg/diagnose/diagnosis;
// 7.65 moved them (variant_diagnosis_def.go). agent-tags.sh selects this
// file when the checkout has no comp/core/diagnose/def.
type (
	agentDiagnosis       = diagnosis.Diagnosis
	agentDiagnosisStatus = diagnosis.Result
)

const (
	diagnosisSuccess         = diagnosis.DiagnosisSuccess
	diagnosisFail            = diagnosis.DiagnosisFail
	diagnosisWarning         = diagnosis.DiagnosisWarning
	diagnosisUnexpectedError = diagnosis.DiagnosisUnexpectedError
)

func newAgentDiagnosis(status agentDiagnosisStatus, category string, d rttcheck.Diagnosis) agentDiagnosis {
	return diagnosis.Diagnosis{
		Result:      status,
		Category:    category,
		Name:        d.Name,
		Diagnosis:   d.Diagnosis,
		Remediation: d.Remediation,
		RawError:    d.RawError,
	}
}

// statusOf is the field that holds a diagnosis's result.
func statusOf(d agentDiagnosis) agentDiagnosisStatus { return d.Result }
