// Package integration: the YAML of one instance or init_config.
package integration

// Data is one YAML document.
type Data []byte

// FakeConfigHash is the digest the agent's tests configure checks with.
const FakeConfigHash = 1
