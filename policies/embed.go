// Package policies holds sendguard's Rego policies, their data and their
// tests. The files are embedded in the binary as the default policy bundle;
// `sendguard serve --policies DIR` loads a directory instead.
package policies

import "embed"

// FS is the embedded policy tree: sendguard/*.rego, the data
// (sendguard/config/data.json), its JSON Schemas (schemas/) and the probe
// sends (sendguard/probes.json). Test files (*_test.rego) are embedded too;
// the engine skips them.
//
//go:embed sendguard schemas
var FS embed.FS
