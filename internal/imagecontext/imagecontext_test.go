package imagecontext

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNetRawCapabilityIsSetcaps: the attribute is byte for byte what
// `setcap cap_net_raw+ep` writes (root and libcap2-bin; skipped otherwise).
func TestNetRawCapabilityIsSetcaps(t *testing.T) {
	setcap, err := exec.LookPath("setcap")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and setcap")
	}
	f := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(f, []byte("x"), 0o755)
	if out, err := exec.Command(setcap, "cap_net_raw+ep", f).CombinedOutput(); err != nil {
		t.Skipf("setcap: %v: %s", err, out)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(f, "security.capability", buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := NetRawCapability(); !bytes.Equal(buf[:n], got) {
		t.Errorf("setcap wrote % x, NetRawCapability is % x", buf[:n], got)
	}
}

func TestWriteTar(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTar(&b, []byte("ELF..."), time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&b)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name != BinaryPath {
			continue
		}
		body, _ := io.ReadAll(tr)
		if string(body) != "ELF..." || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mode %o uid %d gid %d body %q", h.Name, h.Mode, h.Uid, h.Gid, body)
		}
		if got := h.PAXRecords["SCHILY.xattr.security.capability"]; got != string(NetRawCapability()) {
			t.Errorf("capability record % x", got)
		}
	}
	if len(names) != 4 || names[3] != BinaryPath {
		t.Errorf("entries %q", names)
	}
}
