package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/policy"
	sgversion "github.com/sendguard/sendguard/internal/version"
)

// Set by `make build` and `make release` through -ldflags "-X main.version=…".
var (
	version   = ""
	commit    = ""
	buildDate = ""
)

// versionInfo is what `sendguard version` prints.
type versionInfo struct {
	Version, Commit, BuildDate string
	Modified                   bool
	Policies                   string            // the embedded policy tree's revision
	Models                     map[string]string // task → embedded model file's version
}

// currentVersion reads the ldflags values, falling back to the module
// version and the VCS stamp Go writes into every build from a checkout
// (runtime/debug.ReadBuildInfo).
func currentVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, BuildDate: buildDate,
		Policies: policy.EmbeddedRevision(),
		Models:   map[string]string{model.Inbound: model.EmbeddedVersion(model.Inbound), model.Outbound: model.EmbeddedVersion(model.Outbound)}}
	if v.Version == "" {
		v.Version = sgversion.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.BuildDate == "" {
					v.BuildDate = s.Value // the commit's time: the nearest a plain go build knows
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	for _, f := range []*string{&v.Version, &v.Commit, &v.BuildDate} {
		if *f == "" {
			*f = "unknown"
		}
	}
	return v
}

// printVersion writes the version report: the line internal/version
// writes (with the -ldflags version when `make build` set one), then one
// "name: value" a line.
func printVersion(w io.Writer) error {
	v := currentVersion()
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "%s\ncommit: %s\nbuilt: %s\npolicies: embedded@%s\nmodel inbound: %s\nmodel outbound: %s\n",
		sgversion.Line(v.Version), commit, v.BuildDate, v.Policies, v.Models[model.Inbound], v.Models[model.Outbound])
	return err
}
