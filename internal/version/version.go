// Package version holds sendguard's release version: the one `sendguard
// version` prints, the tag `make image` gives the image, the version the
// injector writes to sendguard.io/status, and the chart's appVersion (the
// chart's default image tag). Tests keep the chart and this constant equal,
// so the chart never points at an image the build does not produce.
package version

import (
	"fmt"
	"runtime"
)

// Version is the release version, without a leading "v".
const Version = "0.1.0"

// ImageRepository is where the image `make image` builds is published: its
// tag is ImageRepository:Version, the chart's default image.
const ImageRepository = "ghcr.io/sendguard/sendguard"

// String is the line `sendguard version` prints: the name, Version, and
// the Go toolchain and platform the binary was built with.
func String() string { return Line(Version) }

// Line is String's line for version v (a version `make build` stamped in
// instead of Version).
func Line(v string) string {
	return fmt.Sprintf("sendguard %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
