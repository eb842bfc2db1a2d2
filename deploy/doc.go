// Package deploy holds no code: its test checks the deployment files beside
// it (docker/, helm/, kubernetes/) for the settings they exist for and that
// the go-metro configuration they embed parses with rttcheck's own parser.
// The standalone image (docker/Dockerfile.go-metro, context made by
// docker/imagecontext) is also built and run in the lab
// (tests/image_test.go); the agent image and the manifests are not (no
// agent image, no cluster here).
package deploy
