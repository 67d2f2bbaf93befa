// Command imagebuild builds sendguard's OCI image without Docker and writes
// it as a docker-archive tarball that `docker load` and `podman load` read
// (`make image` runs it):
//
//	go run ./cmd/imagebuild [-out bin/sendguard-image.tar] [-arch amd64] [-revision REV]
//
// It compiles ./cmd/sendguard statically (CGO_ENABLED=0, -trimpath) and
// packs it with internal/image, tagged version.ImageRepository:version.Version,
// the chart's default image. Every timestamp is SOURCE_DATE_EPOCH (seconds
// since the epoch; the Makefile passes the last commit's time), or the epoch
// when unset: the same source gives the same tarball, byte for byte.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/sendguard/sendguard/internal/image"
	"github.com/sendguard/sendguard/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bin/sendguard-image.tar", "the tarball to write")
	arch := fs.String("arch", runtime.GOARCH, "GOARCH of the image")
	revision := fs.String("revision", "", "VCS revision for the org.opencontainers.image.revision label")
	binary := fs.String("binary", "", "pack this linux binary instead of building ./cmd/sendguard (it must be static)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("imagebuild takes no arguments")
	}
	created := time.Unix(0, 0)
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since the epoch", s)
		}
		created = time.Unix(sec, 0)
	}
	bin := *binary
	if bin == "" {
		dir, err := os.MkdirTemp("", "sendguard-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "sendguard")
		if err := image.BuildBinary(ctx, "", ".", *arch, bin); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img, err := image.Build(image.Options{Binary: data, Arch: *arch, Revision: *revision, Created: created})
	if err != nil {
		return err
	}
	tag := image.Tag(version.Version)
	if err := image.WriteFile(*out, tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s %s (linux/%s)\nload it with: docker load -i %[1]s   (or podman load -i %[1]s)\n", *out, tag, digest, *arch)
	return nil
}
