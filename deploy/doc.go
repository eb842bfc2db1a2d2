// Package deploy holds no code: its test checks the deployment files beside
// it (docker/, helm/, kubernetes/), which are not built in CI (no Docker,
// no cluster), for the settings they exist for and that the go-metro
// configuration they embed parses with rttcheck's own parser.
package deploy
