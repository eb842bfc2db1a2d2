package rttcheck

// Version is go-metro's version: the one place it is written. The agent
// shows it next to the check's name in `agent status` (Check.Version) and
// in the instance's inventory metadata; bump it with CHANGELOG.md at a
// release. A build inside a datadog-agent workspace has no module version
// to read (runtime/debug says "(devel)"), hence a constant.
const Version = "0.1.0-dev"
