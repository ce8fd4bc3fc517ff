// oci: assemble Ballast's container image as an OCI image archive, and push it.
//
//	oci build --binary PATH --ca-bundle PATH --out FILE.oci.tar --ref NAME:TAG \
//	    [--label KEY=VALUE]... [--epoch SECONDS]
//	oci push --archive FILE.oci.tar --image REGISTRY/NAME:TAG
//
// build writes one layer (the binary at /usr/local/bin/ballast, a CA bundle,
// /etc/passwd and /etc/group with uid/gid 65532, /home/nonroot and /tmp) on an
// empty base: no shell, no package manager. The config runs as 65532:65532 with
// entrypoint ballast. Every file time is --epoch (the commit time), so the same
// inputs give the same digest. The archive is an OCI image layout (oci-layout,
// index.json, blobs/) in a tar, as `crane pull --format oci` or skopeo's oci-archive
// write it. It prints the image's manifest digest on stdout.
//
// push reads such an archive and pushes its one image, with the credentials of
// ~/.docker/config.json (docker login, crane auth login), as crane does.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	uid        = 65532
	binaryPath = "usr/local/bin/ballast"
	caPath     = "etc/ssl/certs/ca-certificates.crt"
)

type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labels) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--label %q: want KEY=VALUE", v)
	}
	l[k] = val
	return nil
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "push":
		err = push(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "oci %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: oci build --binary PATH --ca-bundle PATH --out FILE --ref NAME:TAG [--label K=V]... [--epoch S]\n       oci push --archive FILE --image REF")
	os.Exit(2)
}

func build(args []string) error {
	fl := flag.NewFlagSet("build", flag.ExitOnError)
	binary := fl.String("binary", "", "the static ballast binary")
	caBundle := fl.String("ca-bundle", "", "a PEM CA bundle (Debian's ca-certificates.crt)")
	out := fl.String("out", "", "the OCI image archive to write")
	ref := fl.String("ref", "", "the name:tag recorded in index.json (org.opencontainers.image.ref.name)")
	epoch := fl.Int64("epoch", 0, "file and image creation time, in seconds since 1970 (SOURCE_DATE_EPOCH)")
	lbls := labels{}
	fl.Var(lbls, "label", "an OCI label KEY=VALUE (repeatable)")
	_ = fl.Parse(args)
	for n, v := range map[string]string{"--binary": *binary, "--ca-bundle": *caBundle, "--out": *out, "--ref": *ref} {
		if v == "" {
			return fmt.Errorf("%s is required", n)
		}
	}
	created := time.Unix(*epoch, 0).UTC()

	bin, err := os.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("--binary: %w", err)
	}
	ca, err := os.ReadFile(*caBundle)
	if err != nil {
		return fmt.Errorf("--ca-bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
		return fmt.Errorf("--ca-bundle %s: no PEM certificate in it", *caBundle)
	}
	layerTar, err := rootfs(bin, ca, created)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}

	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "image/build: ballast, CA bundle, passwd/group for 65532", Comment: "one layer, no shell"},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture = "amd64"
	cfg.OS = "linux"
	cfg.Created = v1.Time{Time: created}
	cfg.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cfg.Config.Entrypoint = []string{"/" + binaryPath}
	cfg.Config.Cmd = []string{"run"}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{
		"PATH=/usr/local/bin",
		"SSL_CERT_FILE=/" + caPath,
	}
	cfg.Config.Labels = lbls
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: created})
	if err != nil {
		return err
	}
	img = mutate.Annotations(img, map[string]string(lbls)).(v1.Image)

	dir, err := os.MkdirTemp(filepath.Dir(*out), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": *ref,
	})); err != nil {
		return err
	}
	if err := tarDir(dir, *out, created); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(digest.String())
	return nil
}

// rootfs is the image's one layer, as an uncompressed tar.
func rootfs(bin, ca []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid)
	steps := []error{
		dir("etc", 0o755, 0),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		dir("etc/ssl", 0o755, 0),
		dir("etc/ssl/certs", 0o755, 0),
		file(caPath, 0o644, ca),
		dir("home", 0o755, 0),
		dir("home/nonroot", 0o700, uid),
		dir("tmp", 0o1777, 0),
		dir("usr", 0o755, 0),
		dir("usr/local", 0o755, 0),
		dir("usr/local/bin", 0o755, 0),
		file(binaryPath, 0o755, bin),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes dir's files into a tar at out, sorted, with fixed times and owners.
func tarDir(dir, out string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		if info.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func push(args []string) error {
	fl := flag.NewFlagSet("push", flag.ExitOnError)
	archive := fl.String("archive", "", "an archive written by oci build")
	image := fl.String("image", "", "where to push: REGISTRY/NAME:TAG")
	insecure := fl.Bool("insecure", false, "allow plain HTTP to the registry (a local test registry only)")
	_ = fl.Parse(args)
	if *archive == "" || *image == "" {
		return errors.New("--archive and --image are required")
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(*image, opts...)
	if err != nil {
		return fmt.Errorf("--image %q: %w", *image, err)
	}
	dir, err := os.MkdirTemp("", "ballast-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := untar(*archive, dir); err != nil {
		return fmt.Errorf("--archive %s: %w", *archive, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("--archive %s: not an OCI image layout: %w", *archive, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("--archive %s: want one image, found %d", *archive, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	fmt.Printf("%s@%s\n", ref.Context().Name(), m.Manifests[0].Digest)
	return nil
}

func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		clean := filepath.Clean(h.Name)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("entry %q leaves the archive", h.Name)
		}
		target := filepath.Join(dir, clean)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			out.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}
