// Command imageload loads an image tarball the way `podman load` does, with
// the library podman load uses (containers/image, go.podman.io/image/v5), and
// prints what it loaded as JSON. internal/image's tests run it on the tarball
// `make image` writes; no container runtime is needed.
//
//	imageload [-keep DIR] TARBALL
//
// Like podman load (containers/common libimage.Runtime.Load) it tries the
// tarball as an oci-archive first and then as a docker-archive (the format
// `docker save` writes and `docker load` reads: manifest.json naming each
// image's config, RepoTags and layers). Each image is copied with
// copy.Image under the policy podman load uses for a local archive
// (insecureAcceptAnything) into an OCI layout directory; the copy checks
// every layer's uncompressed digest against the config's rootfs.diff_ids
// (docker load's check) and the layer count against the config. Then every
// blob the layout holds is read back and checked against its descriptor
// (digest and size), and every layer's uncompressed digest against its
// diff_id once more.
//
// The output is one JSON object: the transport that loaded the tarball and,
// per image, the names it is loaded under (manifest.json's RepoTags, as
// `docker images` or `podman images` would list them), the image ID (the
// config's digest, the ID both docker and podman give it) and the config.
// Any failure exits 1 with the reason on stderr and nothing on stdout.
//
// Built from its own module by `make imageload-bin` into .cache/imageload
// (CGO_ENABLED=0 with the tags in ../../Makefile: no gpgme, no storage
// graph drivers), so that sendguard's go.mod does not carry containers/image.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/archive"
	ociarchive "go.podman.io/image/v5/oci/archive"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// Result is what imageload prints.
type Result struct {
	// Transport is the containers/image transport that read the tarball:
	// "docker-archive" or "oci-archive".
	Transport string `json:"transport"`
	// Rejected holds why the transports tried before it refused the
	// tarball, as podman load's debug log would.
	Rejected map[string]string `json:"rejected,omitempty"`
	Images   []Image           `json:"images"`
}

// Image is one loaded image.
type Image struct {
	// Names are the references it is loaded under (RepoTags).
	Names []string `json:"names"`
	// ID is the digest of the config as the tarball holds it: the image
	// ID docker load and podman load give it.
	ID string `json:"id"`
	// OCIManifest and OCIConfig are the digests of the manifest and the
	// config the copy wrote to the OCI layout (converted from docker's
	// schema 2: the config is re-encoded, so OCIConfig is not ID).
	OCIManifest  string            `json:"ociManifest"`
	OCIConfig    string            `json:"ociConfig"`
	Architecture string            `json:"architecture"`
	OS           string            `json:"os"`
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd"`
	User         string            `json:"user"`
	Env          []string          `json:"env"`
	WorkingDir   string            `json:"workingDir"`
	Labels       map[string]string `json:"labels"`
	// DiffIDs are the layers' uncompressed digests, checked against each
	// layer's content.
	DiffIDs []string `json:"diffIDs"`
	// Layers are the digests of the layer blobs in the OCI layout: stored
	// uncompressed, so they are the DiffIDs.
	Layers []string `json:"layers"`
}

func main() {
	keep := flag.String("keep", "", "write the OCI layout into this directory and keep it (default: a temporary directory, removed)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: imageload [-keep DIR] TARBALL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	res, err := load(context.Background(), flag.Arg(0), *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "imageload:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "imageload:", err)
		os.Exit(1)
	}
}

// load loads tarball into the OCI layout dir (a temporary one when empty).
func load(ctx context.Context, tarball, dir string) (*Result, error) {
	if _, err := os.Stat(tarball); err != nil {
		return nil, err
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "imageload-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Nothing from the machine's registries.conf, policy.json or
	// containers.conf: the same result everywhere.
	sys := &types.SystemContext{
		SystemRegistriesConfPath:    os.DevNull,
		SystemRegistriesConfDirPath: os.DevNull,
		BigFilesTemporaryDir:        dir,
	}
	policy, err := signature.NewPolicyContext(&signature.Policy{
		Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()},
	})
	if err != nil {
		return nil, err
	}
	defer policy.Destroy()

	res := &Result{Rejected: map[string]string{}}
	// oci-archive, as podman load tries first: a docker-save tarball has no
	// index.json, and is refused here.
	if src, err := ociarchive.NewReference(tarball, ""); err != nil {
		res.Rejected["oci-archive"] = err.Error()
	} else if img, err := copyImage(ctx, sys, policy, src, filepath.Join(dir, "layout"), "image-0", nil); err != nil {
		res.Rejected["oci-archive"] = err.Error()
	} else {
		res.Transport = "oci-archive"
		res.Images = []Image{*img}
		return res, nil
	}

	reader, err := archive.NewReader(sys, tarball)
	if err != nil {
		return nil, fmt.Errorf("docker-archive: %w (oci-archive: %s)", err, res.Rejected["oci-archive"])
	}
	defer reader.Close()
	groups, err := reader.List()
	if err != nil {
		return nil, fmt.Errorf("docker-archive: %w", err)
	}
	if len(groups) == 0 {
		return nil, errors.New("docker-archive: manifest.json lists no image")
	}
	res.Transport = "docker-archive"
	for i, refs := range groups {
		// One image, one reference per RepoTag (or one by index when it
		// has none); podman load gives the image every tag.
		var names []string
		for _, ref := range refs {
			tags, err := reader.ManifestTagsForReference(ref)
			if err != nil {
				return nil, fmt.Errorf("docker-archive image %d: %w", i, err)
			}
			names = append(names, tags...)
		}
		img, err := copyImage(ctx, sys, policy, refs[0], filepath.Join(dir, "layout"), fmt.Sprintf("image-%d", i), names)
		if err != nil {
			return nil, fmt.Errorf("docker-archive image %d: %w", i, err)
		}
		res.Images = append(res.Images, *img)
	}
	return res, nil
}

// copyImage copies src into the OCI layout dir under the name refName and
// checks what it wrote.
func copyImage(ctx context.Context, sys *types.SystemContext, policy *signature.PolicyContext, src types.ImageReference, dir, refName string, names []string) (*Image, error) {
	dest, err := layout.NewReference(dir, refName)
	if err != nil {
		return nil, err
	}
	// The image ID docker load and podman load give it: the digest of the
	// config as the tarball holds it (the copy to OCI re-encodes it).
	srcImg, err := src.NewImage(ctx, sys)
	if err != nil {
		return nil, err
	}
	id := srcImg.ConfigInfo().Digest
	srcImg.Close()
	// The layers are stored as the source gives them: uncompressed, their
	// digests the diff_ids, as containers-storage keeps them for podman
	// (and no minute of gzip for the binary's layer).
	destSys := *sys
	destSys.OCIAcceptUncompressedLayers = true
	if _, err := copy.Image(ctx, policy, dest, src, &copy.Options{
		ReportWriter:   io.Discard,
		SourceCtx:      sys,
		DestinationCtx: &destSys,
	}); err != nil {
		return nil, err
	}
	img, err := verifyLayout(dir, refName)
	if err != nil {
		return nil, fmt.Errorf("oci layout after copy: %w", err)
	}
	img.ID = id.String()
	img.Names = names
	if img.Names == nil {
		img.Names = []string{}
	}
	return img, nil
}

// verifyLayout reads the image refName from the OCI layout dir without
// containers/image: index.json, the manifest, the config and every layer,
// each blob against its descriptor's digest and size, each layer's
// uncompressed content against the config's diff_id.
func verifyLayout(dir, refName string) (*Image, error) {
	var index imgspecv1.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &index); err != nil {
		return nil, err
	}
	var mdesc *imgspecv1.Descriptor
	for i, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == refName {
			mdesc = &index.Manifests[i]
		}
	}
	if mdesc == nil {
		return nil, fmt.Errorf("index.json has no manifest named %q", refName)
	}
	mb, err := blob(dir, *mdesc)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m imgspecv1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	cb, err := blob(dir, m.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg imgspecv1.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("config rootfs type %q, want layers", cfg.RootFS.Type)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%d layers in the manifest, %d diff_ids in the config", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	img := &Image{
		OCIManifest:  mdesc.Digest.String(),
		OCIConfig:    m.Config.Digest.String(),
		Architecture: cfg.Architecture,
		OS:           cfg.OS,
		Entrypoint:   cfg.Config.Entrypoint,
		Cmd:          cfg.Config.Cmd,
		User:         cfg.Config.User,
		Env:          cfg.Config.Env,
		WorkingDir:   cfg.Config.WorkingDir,
		Labels:       cfg.Config.Labels,
	}
	for i, l := range m.Layers {
		diffID, err := layerDiffID(dir, l)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if diffID != cfg.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("layer %d: uncompressed digest %s, the config's diff_id %s", i, diffID, cfg.RootFS.DiffIDs[i])
		}
		img.DiffIDs = append(img.DiffIDs, diffID.String())
		img.Layers = append(img.Layers, l.Digest.String())
	}
	return img, nil
}

// blobPath is where the OCI layout keeps the blob d.
func blobPath(dir string, d imgspecv1.Descriptor) (string, error) {
	if err := d.Digest.Validate(); err != nil {
		return "", err
	}
	if d.Digest.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %s: want sha256", d.Digest)
	}
	return filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded()), nil
}

// blob reads the (small) blob d, checked against its digest and size.
func blob(dir string, d imgspecv1.Descriptor) ([]byte, error) {
	p, err := blobPath(dir, d)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, the descriptor says %d", d.Digest, len(b), d.Size)
	}
	if got := digest.FromBytes(b); got != d.Digest {
		return nil, fmt.Errorf("blob %s has digest %s", d.Digest, got)
	}
	return b, nil
}

// layerDiffID checks the layer blob d against its digest and size and
// returns the digest of its uncompressed content.
func layerDiffID(dir string, d imgspecv1.Descriptor) (digest.Digest, error) {
	p, err := blobPath(dir, d)
	if err != nil {
		return "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	compressed := sha256.New()
	counter := &countWriter{}
	un, _, err := compression.AutoDecompress(io.TeeReader(f, io.MultiWriter(compressed, counter)))
	if err != nil {
		return "", err
	}
	defer un.Close()
	uncompressed := sha256.New()
	if _, err := io.Copy(uncompressed, un); err != nil {
		return "", err
	}
	// The decompressor may stop at the end of the stream: hash the rest.
	if _, err := io.Copy(io.MultiWriter(compressed, counter), f); err != nil {
		return "", err
	}
	if counter.n != d.Size {
		return "", fmt.Errorf("blob %s: %d bytes, the descriptor says %d", d.Digest, counter.n, d.Size)
	}
	if got := "sha256:" + hex.EncodeToString(compressed.Sum(nil)); got != d.Digest.String() {
		return "", fmt.Errorf("blob %s has digest %s", d.Digest, got)
	}
	return digest.Digest("sha256:" + hex.EncodeToString(uncompressed.Sum(nil))), nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}
