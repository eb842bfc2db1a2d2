module github.com/gometro/go-metro/check

go 1.23.0

// The agent's modules (github.com/DataDog/datadog-agent/...) are deliberately
// not required here: the proxy cannot serve the agent's root module, so this
// module only builds inside a datadog-agent checkout whose go.work also lists
// this directory and the go-metro root module (see README.md).
require github.com/gometro/go-metro v0.0.0-00010101000000-000000000000

// The version above does not exist anywhere. Without this replace, commands
// that load the workspace's whole module graph (`go list -m ...` in the
// agent's checkout, for one) try to download it and fail with 403 Forbidden.
replace github.com/gometro/go-metro => ../
