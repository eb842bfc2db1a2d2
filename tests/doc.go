// Package tests holds go-metro's end-to-end tests: capture engines run in a
// lab of network namespaces (tests/lab) with a userspace delay line between
// client and server, and their per-flow RTT estimates are compared with the
// Linux kernel's own (TCP_INFO) for the same connections. They need root;
// see lab.RequireRoot.
package tests
