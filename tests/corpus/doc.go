// Package corpus replays real captures from other projects' test suites
// (../shared/corpus beside the worktree: tcpdump, libpcap, gopacket,
// suricata-verify; SOURCES.md there says where each came from) through the
// capture engine, the way `go-metro replay` does:
//
//   - TestReplayCorpus reads every file: no panic, no hang (a timeout per
//     file), errors of one line, and figures by error kind.
//   - TestTsharkCorpus compares each flow with tshark's tcp.analysis.ack_rtt
//     (internal/tsharkcmp) on the files where tshark finds >= 20 samples:
//     every flow tshark times >= 3 times from the local side has go-metro
//     samples, and go-metro's minimum is not below tshark's by more than
//     max(5 %, 0.05 ms). Each exception is listed, with its measured reason,
//     in exceptions (corpus_test.go).
//
// Neither needs root. Both skip when the corpus is absent (a user's clone)
// and fail when CI is set. `make corpus` runs them verbosely: the figures
// are printed by `go test -v`.
package corpus
