//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"keywarden.dev/keywarden/test/harness"
)

// TestDevLoop runs make dev as a user does and stops it the three ways a
// user does: Ctrl-C at a terminal (make exits 0), SIGTERM to make and
// SIGINT to make (each stops the cluster, which make then reports as the
// signal it got). The second and third runs find the kubeconfig of a
// cluster that is gone, and say so.
func TestDevLoop(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	verifier, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	console, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	flags := fmt.Sprintf("DEV_FLAGS=--dir %s --verifier-address %s --console-address %s", dir, verifier, console)

	// start runs make dev, on a terminal of its own when tty, and waits
	// until the cluster is up.
	start := func(tty bool) (*exec.Cmd, *output, *os.File) {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", "dev", flags)
		cmd.Dir = root
		out := &output{}
		var master *os.File
		if tty {
			var slave *os.File
			master, slave = openPTY(t)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
			// A session whose controlling terminal is the pty: make is
			// its foreground process group, as in a shell.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			go func() { _, _ = io.Copy(out, master) }()
			defer func() { _ = slave.Close() }()
		} else {
			cmd.Stdout, cmd.Stderr = out, out
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		deadline := time.Now().Add(5 * time.Minute)
		for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
			if time.Now().After(deadline) {
				t.Fatalf("make dev did not come up:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return cmd, out, master
	}
	// wait waits for make to exit and says how it did.
	wait := func(cmd *exec.Cmd, out *output) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Minute):
			t.Fatalf("make dev did not stop:\n%s", out)
			return nil
		}
	}
	stopped := func(out *output, why string) {
		t.Helper()
		if !strings.Contains(out.String(), "Stopped ("+why+")") {
			t.Fatalf("make dev did not say it stopped (%s):\n%s", why, out)
		}
		if c := leftover(dir); c != "" {
			t.Fatalf("make dev left %s running", c)
		}
	}

	// Ctrl-C at the terminal.
	cmd, out, master := start(true)
	if _, err := master.Write([]byte{3}); err != nil { // ^C
		t.Fatal(err)
	}
	if err := wait(cmd, out); err != nil {
		t.Fatalf("make dev after Ctrl-C: %v, want exit 0:\n%s", err, out)
	}
	stopped(out, "interrupt")
	if strings.Contains(out.String(), "make: ***") {
		t.Fatalf("make reported an error after Ctrl-C:\n%s", out)
	}
	// What it printed is what the README's quickstart shows.
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	shown := devNormal(readmeQuickstart(t, string(readme)))
	printed := strings.ReplaceAll(strings.ReplaceAll(out.String(), "\r\n", "\n"), dir, filepath.Join(root, "bin", "dev"))
	printed = strings.ReplaceAll(strings.ReplaceAll(printed, verifier, "127.0.0.1:8090"), console, "127.0.0.1:8095")
	printed = strings.ReplaceAll(printed, root, "/path/to/keywarden")
	if !strings.Contains(devNormal(printed), shown) {
		t.Fatalf("make dev prints\n%s\nwhere the README shows\n%s", printed, readmeQuickstart(t, string(readme)))
	}
	_ = master.Close()

	// SIGTERM to make, from a process manager or kill.
	cmd, out, _ = start(false)
	if !strings.Contains(out.String(), "/kubeconfig belonged to a cluster that is gone") {
		t.Fatalf("make dev did not say the kubeconfig it found was of a cluster that is gone:\n%s", out)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = wait(cmd, out) // make exits as terminated, once its recipe has stopped
	stopped(out, "terminated")

	// SIGINT to make alone, which make does not pass on.
	cmd, out, _ = start(false)
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = wait(cmd, out)
	stopped(out, "make was interrupted")
}

// readmeQuickstart is the README's block of what make dev prints.
func readmeQuickstart(t *testing.T, readme string) string {
	t.Helper()
	return readmeFence(t, readme, "`make dev` prints the keys", "```\n")
}

var devAge = regexp.MustCompile(`(?m) \d+s$`)

// devNormal is make dev's output as the comparison sees it: as
// readmeNormal, with the AGE column's seconds as a placeholder.
func devNormal(s string) string {
	return readmeNormal(devAge.ReplaceAllString(s, " <age>"), "default")
}

// output is a buffer that processes write into while the test reads it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// openPTY opens a pseudo-terminal: its master, which the test types into,
// and its slave, which make gets as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// leftover names a process still running with dir in its command line
// (etcd and kube-apiserver keep their data there, the components their
// kubeconfig), or is empty.
func leftover(dir string) string {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + p.Name() + "/stat")
		if fields := strings.Fields(string(stat)); len(fields) > 2 && fields[2] == "Z" {
			continue // exited, not yet reaped
		}
		return strings.ReplaceAll(string(cmdline), "\x00", " ")
	}
	return ""
}
