// Package imagecontext makes the build context of the go-metro image
// (deploy/docker/Dockerfile.go-metro): a static go-metro binary packed in a
// tar archive that carries its file capability.
//
// The binary needs the file capability cap_net_raw+ep so that a non-root
// user with NET_RAW in its bounding set captures. Docker drops extended
// attributes on COPY (from the build context and between stages alike), so
// a capability set with setcap never reaches the image that way; a local tar
// archive given to ADD is unpacked with the attributes its headers carry.
// Writing that header here needs neither setcap nor privileges, and the
// image needs no base image: it builds FROM scratch with nothing pulled.
package imagecontext

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// TarName is the archive in the context that the Dockerfile ADDs.
const TarName = "go-metro.tar"

// BinaryPath is where the image has the binary (its ENTRYPOINT).
const BinaryPath = "usr/local/bin/go-metro"

// capNetRaw is the capability number of CAP_NET_RAW (linux/capability.h).
const capNetRaw = 13

// NetRawCapability is the value of the security.capability attribute that
// `setcap cap_net_raw+ep` writes: struct vfs_cap_data, revision 2, the
// effective flag, CAP_NET_RAW permitted, nothing inheritable.
func NetRawCapability() []byte {
	const vfsCapRevision2, vfsCapFlagsEffective = 0x02000000, 0x000001
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], vfsCapRevision2|vfsCapFlagsEffective)
	binary.LittleEndian.PutUint32(b[4:], 1<<capNetRaw) // permitted, low word
	// inheritable low, permitted high, inheritable high: 0
	return b
}

// WriteTar writes an archive holding bin at BinaryPath, mode 0755, owned
// by root, with the NET_RAW file capability.
func WriteTar(w io.Writer, bin []byte, mtime time.Time) error {
	tw := tar.NewWriter(w)
	dirs := []string{"usr/", "usr/local/", "usr/local/bin/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: BinaryPath, Mode: 0o755, Size: int64(len(bin)), ModTime: mtime,
		Format:     tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": string(NetRawCapability())},
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	return tw.Close()
}

// Build compiles ./cmd/go-metro of the module in repo statically (no cgo:
// the AF_PACKET backend) and writes dir/TarName.
func Build(ctx context.Context, goCmd, repo, dir string) error {
	tmp, err := os.MkdirTemp("", "go-metro-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	exe := filepath.Join(tmp, "go-metro")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", exe, "./cmd/go-metro")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, TarName))
	if err != nil {
		return err
	}
	if err := WriteTar(f, bin, time.Now()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
