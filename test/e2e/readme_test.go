//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// readmeSession runs the README's kubectl keywarden session, command by
// command, as a shell runs it, against the samples applied in a namespace
// of its own, and checks that each prints what the README shows, but for
// what changes from run to run: times, key prefixes, the namespace's name
// and the width of columns.
func readmeSession(e *env) {
	const ns = "readme"
	readme, err := os.ReadFile(filepath.Join(e.cluster.Root, "README.md"))
	if err != nil {
		e.t.Fatal(err)
	}
	session := readmeBlock(e, string(readme), "A session against `make dev`:")

	// The samples, in a namespace of their own.
	e.kubectl("create", "namespace", ns)
	dir := e.t.TempDir()
	samples, err := filepath.Rel(dir, filepath.Join(e.cluster.Root, "config", "samples")) // kustomize takes no absolute path
	if err != nil {
		e.t.Fatal(err)
	}
	kustomization := "namespace: " + ns + "\nresources: [" + samples + "]\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("apply", "-k", dir)
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", ns, "--timeout=60s")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	b, err := os.ReadFile(e.cluster.Kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("--kubeconfig", kubeconfig, "config", "set-context", "--current", "--namespace", ns)

	keyFile := filepath.Join(dir, "key")
	path := filepath.Dir(e.pluginBin) + ":" + filepath.Dir(e.cluster.KubectlBin) + ":" + os.Getenv("PATH")
	var printed strings.Builder
	for _, c := range session {
		// The shell's variables (KEY) carry from one command to the next
		// through a file, so that a command that only reads can run again.
		script := `exec 2>&1; KEY=$(cat ` + keyFile + ` 2>/dev/null); ` + c.command + `; printf %s "$KEY" > ` + keyFile
		reads := !regexp.MustCompile(`keywarden (create|rotate|revoke|delete)`).MatchString(c.command)
		var got string
		for attempt := 0; ; attempt++ {
			cmd := exec.Command("sh", "-c", script)
			cmd.Env = append(os.Environ(), "TZ=UTC", "PATH="+path, "KUBECONFIG="+kubeconfig)
			out, _ := cmd.CombinedOutput()
			got = string(out)
			e.mu.Lock()
			e.pluginOutput.WriteString(got)
			e.mu.Unlock()
			// Events are written beside the status: a command that only
			// reads may be a moment early.
			if readmeNormal(got, ns) == readmeNormal(c.output, ns) || !reads || attempt == 10 {
				break
			}
			time.Sleep(time.Second)
		}
		if readmeNormal(got, ns) != readmeNormal(c.output, ns) {
			e.t.Errorf("the README shows, for\n$ %s\n%s\nbut it prints\n%s", c.command, c.output, got)
		}
		printed.WriteString("$ " + c.command + "\n" + strings.ReplaceAll(got, ns+"/", "default/"))
	}
	if e.t.Failed() {
		e.t.Fatalf("the session as it runs now:\n%s", printed.String())
	}
}

type readmeCommand struct{ command, output string }

// readmeFence is the text of the first fenced block opened by fence (such
// as "```console\n") after marker in the README.
func readmeFence(t *testing.T, readme, marker, fence string) string {
	t.Helper()
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("the README has no %q", marker)
	}
	rest := readme[i:]
	start := strings.Index(rest, fence)
	if start < 0 {
		t.Fatalf("no block opened by %q after %q", fence, marker)
	}
	body := rest[start+len(fence):]
	end := strings.Index(body, "```")
	if end < 0 {
		t.Fatalf("the block after %q is not closed", marker)
	}
	return body[:end]
}

// readmeBlock is the console block that follows marker in the README:
// each "$ " line (with the lines it continues with a backslash) and the
// output after it.
func readmeBlock(e *env, readme, marker string) []readmeCommand {
	lines := strings.Split(readmeFence(e.t, readme, marker, "```console\n"), "\n")
	var out []readmeCommand
	for j := 0; j < len(lines); j++ {
		line := lines[j]
		if !strings.HasPrefix(line, "$ ") {
			if len(out) == 0 {
				e.t.Fatalf("the session starts with output: %q", line)
			}
			out[len(out)-1].output += line + "\n"
			continue
		}
		command := strings.TrimPrefix(line, "$ ")
		for strings.HasSuffix(command, "\\") && j+1 < len(lines) {
			j++
			command = strings.TrimSuffix(command, "\\") + " " + strings.TrimSpace(lines[j])
		}
		out = append(out, readmeCommand{command: command})
	}
	if len(out) < 5 {
		e.t.Fatalf("the session holds %d commands", len(out))
	}
	return out
}

var (
	readmeTimes    = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( [A-Z]{2,5}|Z)?`)
	readmePrefixes = regexp.MustCompile(`\b(kw|pdm)_[A-Za-z0-9]{4,5}\b`)
	readmeSpaces   = regexp.MustCompile(`[ \t]+`)
)

// readmeNormal is output as the comparison sees it: times and prefixes as
// placeholders, the namespace as the README's, runs of blanks as one, no
// trailing blank lines, and a table's rows in one order (list shows the
// newest first, and keys created together straddle a second as often as
// not; keyview's tests hold the order).
func readmeNormal(s, ns string) string {
	s = strings.ReplaceAll(s, ns+"/", "default/")
	s = regexp.MustCompile(`(?m)^`+ns+` `).ReplaceAllString(s, "default ")
	s = readmeTimes.ReplaceAllString(s, "<time>")
	s = readmePrefixes.ReplaceAllString(s, "<prefix>")
	s = readmeSpaces.ReplaceAllString(s, " ")
	var lines []string
	table := -1 // where the rows of a table begin
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimRight(line, " ")
		switch {
		case strings.HasPrefix(line, "NAME ") || strings.HasPrefix(line, "NAMESPACE "):
			lines = append(lines, line)
			table = len(lines)
			continue
		case line == "" && table >= 0:
			slices.Sort(lines[table:])
			table = -1
		}
		lines = append(lines, line)
	}
	if table >= 0 {
		slices.Sort(lines[table:])
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}
