#!/usr/bin/env bash
# agent-tags.sh AGENT_SRC             prints the build tags that select
#                                     go-metro's variant for that checkout
# agent-tags.sh --toolchain AGENT_SRC prints the Go toolchain it pins
#
# The Datadog Agent's API changed several times since 7.63, and check/ holds
# one file per variant, chosen by build tag (the variant_*.go files):
#
#   gometro_diagnose_def          7.65+: diagnosis types in
#                                 comp/core/diagnose/def (field Status), not
#                                 pkg/diagnose/diagnosis (field Result)
#   gometro_configure_provider    7.78+: check.Check.Configure takes
#                                 `source, provider string`
#   gometro_inventorychecks_mock  newest: the inventorychecks mock in its own
#                                 package (tests only)
#   gometro_tagger_checks_config  7.65+: the tagger maps the cardinality
#                                 types.ChecksConfigCardinality to
#                                 checks_tag_cardinality; it no longer has a
#                                 ChecksCardinality() method
#   gometro_taggermock_impl       7.65+: the tagger mock is
#                                 comp/core/tagger/impl's NewMock, not the
#                                 fake of comp/core/tagger/mock (tests only)
#
# Each is read from the checkout itself, not from a version number, so a
# development tree between releases gets what it actually has. A checkout
# whose API is neither form fails here with the file and line to look at,
# rather than later with a compile error inside check/.
#
# `make agent` and the manual steps of README.md both use it:
#   go build -tags "zlib docker containerd kubelet $(check/agent-tags.sh .)" ...
set -euo pipefail

mode=tags
if [ "${1:-}" = --toolchain ]; then
	mode=toolchain
	shift
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--toolchain] AGENT_SRC" >&2
	exit 2
fi
src=$1
if [ ! -f "$src/go.work" ]; then
	echo "$0: $src/go.work not found: is $src a datadog-agent checkout (7.x, with its go.work)?" >&2
	exit 1
fi

if [ $mode = toolchain ]; then
	# The `toolchain` line, else the `go` line (agents 7.64+ write the
	# patch release there): what the agent's own release build runs.
	awk '$1 == "toolchain" { tc = $2 } $1 == "go" { go = "go" $2 }
	     END { if (tc != "") print tc; else if (go != "") print go; else exit 1 }' "$src/go.work" || {
		echo "$0: no go or toolchain line in $src/go.work" >&2
		exit 1
	}
	exit 0
fi

tags=()

def=$src/comp/core/diagnose/def/component.go
if [ -f "$def" ] && grep -Eq '^[[:space:]]+Status[[:space:]]+Status\b' "$def"; then
	tags+=(gometro_diagnose_def)
elif [ ! -d "$src/pkg/diagnose/diagnosis" ]; then
	echo "$0: $src has neither pkg/diagnose/diagnosis nor a Diagnosis with a Status field in comp/core/diagnose/def: check/variant_diagnosis_*.go need a new variant" >&2
	exit 1
fi

iface=$src/pkg/collector/check/check.go
configure=$(grep -E '^[[:space:]]+Configure\(' "$iface" 2>/dev/null | head -n 1)
case "$configure" in
*"source, provider string) error"*) tags+=(gometro_configure_provider) ;;
*"source string) error"*) ;;
*)
	echo "$0: check.Check.Configure in $iface is neither the 7.63 nor the 7.78 form: ${configure:-(not found)}; check/variant_configure_*.go need a new variant" >&2
	exit 1
	;;
esac

if [ -d "$src/comp/metadata/inventorychecks/mock" ]; then
	tags+=(gometro_inventorychecks_mock)
fi

ttypes=$src/comp/core/tagger/types/types.go
tdef=$src/comp/core/tagger/def/component.go
if grep -Eq '^[[:space:]]+ChecksConfigCardinality\b' "$ttypes" 2>/dev/null; then
	tags+=(gometro_tagger_checks_config)
elif ! grep -Eq '^[[:space:]]+ChecksCardinality\(\) types\.TagCardinality' "$tdef" 2>/dev/null; then
	echo "$0: the tagger in $src has neither types.ChecksConfigCardinality ($ttypes) nor a ChecksCardinality() method ($tdef): check/variant_tagger_*.go need a new variant" >&2
	exit 1
fi

if [ ! -f "$src/comp/core/tagger/mock/fake_tagger.go" ] && grep -qs '^func NewMock(' "$src"/comp/core/tagger/impl/*.go; then
	tags+=(gometro_taggermock_impl)
fi

echo "${tags[*]:-}"
