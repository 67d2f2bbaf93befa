// Package policies holds sendguard's Rego policies, their data and their
// tests. The files are embedded in the binary as the default policy bundle;
// `sendguard serve --policies DIR` loads a directory instead.
package policies

import "embed"

// FS is the embedded policy tree: sendguard/*.rego and sendguard/data.json.
// Test files (*_test.rego) are embedded too; the engine skips them.
//
//go:embed sendguard
var FS embed.FS
