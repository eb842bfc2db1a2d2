#!/usr/bin/env bash
# agent-workspace.sh AGENT_SRC OUT_DIR
#
# Prepares a build of a datadog-agent checkout with go-metro registered,
# WITHOUT modifying the checkout: it writes into OUT_DIR
#
#   go.work                the checkout's go.work with every `use` made
#                          absolute, plus the two go-metro modules (go-metro
#                          and go-metro/check);
#   go.work.sum            a copy of the checkout's, if it has one;
#   corechecks.go.overlay  the checkout's pkg/commonchecks/corechecks.go plus
#                          the import and the one RegisterCheck line,
#                          gometro.Factory(store, tagger) with the names
#                          RegisterChecks gives those parameters (not
#                          named .go: OUT_DIR may lie inside go-metro's
#                          module, whose ./... must not see it);
#   overlay.json           `go build -overlay` input replacing that file.
#
# Then, from the checkout, with the toolchain the checkout pins and the
# variant's build tags (agent-tags.sh; the Makefile adds the agent's own
# tags and link flags, see there):
#
#   GOWORK=OUT_DIR/go.work go build -tags "$(agent-tags.sh .)" \
#       -overlay OUT_DIR/overlay.json ./cmd/agent
#
# These are exactly the manual steps of check/README.md (go work use, one
# registration line), applied to copies.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 AGENT_SRC OUT_DIR" >&2
	exit 2
fi
src=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd) # go-metro/check
root=$(cd "$here/.." && pwd)        # go-metro

reg="$src/pkg/commonchecks/corechecks.go"
for f in "$src/go.work" "$reg"; do
	if [ ! -f "$f" ]; then
		echo "$0: $f not found: is $src a datadog-agent checkout (7.x, with its go.work)?" >&2
		exit 1
	fi
done

# go.work resolves relative `use` and `replace` paths against the directory
# of the go.work file, so a copy elsewhere must carry absolute ones. Both the
# block form (`use (` ... `)`) and the one-line form (`use ./x`) occur.
awk -v src="$src" '
function abs(p) {
	if (p ~ /^\//) return p
	if (p == ".") return src
	sub(/^\.\//, "", p)
	return src "/" p
}
/^use[ \t]*\($/        { inuse = 1; print; next }
inuse && /^\)/         { inuse = 0; print; next }
inuse && NF == 1       { sub(/^[ \t]+/, ""); print "\t" abs($0); next }
/^use[ \t]+[^ (]/      { print "use " abs($2); next }
/=>[ \t]*\.\.?\//      { n = index($0, "=>"); rhs = substr($0, n + 2); sub(/^[ \t]+/, "", rhs)
                         print substr($0, 1, n + 1) " " abs(rhs); next }
                       { print }
' "$src/go.work" >"$out/go.work"
if [ -f "$src/go.work.sum" ]; then
	cp "$src/go.work.sum" "$out/go.work.sum"
fi
# `go work use` raises the workspace's go line to the highest a listed
# module declares, and with it the agent binary's default GODEBUG settings.
# go-metro's modules declare no more than the oldest supported agent pins,
# so the line must come out as it went in.
goline() { awk '$1 == "go" { print $2; exit }' "$1"; }
before=$(goline "$out/go.work")
GOWORK="$out/go.work" go work use "$root" "$here"
after=$(goline "$out/go.work")
if [ "$before" != "$after" ]; then
	echo "$0: adding go-metro raised the workspace's go line from $before to $after: a go-metro module declares a newer go than this agent pins" >&2
	exit 1
fi

# go-metro's Factory takes the workloadmeta store and the tagger that
# RegisterChecks receives (the docker check's registration passes them the
# same way): the names of those parameters, read from the checkout's
# signature (one line in 7.63, several from 7.68 on) by their types, under
# the import names the file gives comp/core/workloadmeta/def and
# comp/core/tagger/def.
params=$(awk '
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
/^import \($/                 { inimp = 1; next }
inimp && /^\)/                { inimp = 0; next }
inimp {
	n = split(trim($0), f, /[ \t]+/)
	alias = (n > 1) ? f[1] : ""
	if (f[n] == "\"github.com/DataDog/datadog-agent/comp/core/workloadmeta/def\"") wm = (alias != "" ? alias : "workloadmeta")
	if (f[n] == "\"github.com/DataDog/datadog-agent/comp/core/tagger/def\"") tg = (alias != "" ? alias : "tagger")
}
/^func RegisterChecks\(/       { insig = 1 }
insig                         { sig = sig " " $0; if ($0 ~ /\)[ \t]*{[ \t]*$/) insig = 0 }
END {
	sub(/^.*func RegisterChecks\(/, "", sig)
	sub(/\)[ \t]*{[ \t]*$/, "", sig)
	n = split(sig, ps, ",")
	names = ""
	for (i = 1; i <= n; i++) {
		m = split(trim(ps[i]), w, /[ \t]+/)
		names = names " " w[1]
		if (m == 1) continue # its type is the next parameter'"'"'s (a, b T)
		k = split(trim(names), ns, / /)
		for (j = 1; j <= k; j++) {
			if (wm != "" && w[m] == wm ".Component") store = ns[j]
			if (tg != "" && w[m] == tg ".Component") tagger = ns[j]
		}
		names = ""
	}
	if (store != "" && store != "_" && tagger != "" && tagger != "_") print store, tagger
}
' "$reg")
if [ -z "$params" ]; then
	echo "$0: RegisterChecks in $reg takes no named workloadmeta.Component (comp/core/workloadmeta/def) and tagger.Component (comp/core/tagger/def) parameter: go-metro's Factory needs both (see check/README.md)" >&2
	exit 1
fi
read -r store tagger <<<"$params"
registration="corecheckLoader.RegisterCheck(gometro.CheckName, gometro.Factory($store, $tagger))"

# The registration: one import and one line at the end of RegisterChecks.
awk -v registration="$registration" '
/^import \($/ && !imp                  { print; print "\tgometro \"github.com/gometro/go-metro/check\""; imp = 1; next }
/^func RegisterChecks\(/               { infn = 1 }
infn && /^}/                           { print "\t" registration; infn = 0; done = 1 }
                                       { print }
END { if (!imp || !done) exit 1 }
' "$reg" >"$out/corechecks.go.overlay" || {
	echo "$0: could not find the import block and RegisterChecks in $reg" >&2
	exit 1
}
printf '{"Replace": {"%s": "%s"}}\n' "$reg" "$out/corechecks.go.overlay" >"$out/overlay.json"
