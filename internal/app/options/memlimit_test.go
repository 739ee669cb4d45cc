package options

import (
	"errors"
	"io/fs"
	"runtime/debug"
	"testing"
)

func TestContainerMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"cgroup v2 limit", map[string]string{"/sys/fs/cgroup/memory.max": "536870912\n"}, 536870912, true},
		{"cgroup v2 without limit", map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0, false},
		{"cgroup v1 limit", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456\n"}, 268435456, true},
		{"cgroup v1 without limit", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"v2 wins over v1", map[string]string{
			"/sys/fs/cgroup/memory.max":                   "1073741824",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456",
		}, 1073741824, true},
		{"garbage", map[string]string{"/sys/fs/cgroup/memory.max": "lots"}, 0, false},
		{"no cgroup files", map[string]string{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				if v, ok := tc.files[name]; ok {
					return []byte(v), nil
				}
				return nil, fs.ErrNotExist
			}
			got, ok := containerMemoryLimit(read)
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSetMemoryLimitLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "100MiB")
	read := func(string) ([]byte, error) { return []byte("536870912"), nil }
	if got := setMemoryLimit(read); got != 0 {
		t.Errorf("set %d although GOMEMLIMIT is set", got)
	}
	t.Setenv("GOMEMLIMIT", "")
	unlimited := func(string) ([]byte, error) { return nil, errors.New("no cgroup") }
	if got := setMemoryLimit(unlimited); got != 0 {
		t.Errorf("set %d without a container limit", got)
	}
}

func TestSetMemoryLimitFromTheContainer(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	read := func(name string) ([]byte, error) {
		if name == "/sys/fs/cgroup/memory.max" {
			return []byte("536870912\n"), nil
		}
		return nil, fs.ErrNotExist
	}
	const want = 483183820 // 90% of 512 MiB
	if got := setMemoryLimit(read); got != want {
		t.Errorf("setMemoryLimit = %d, want %d", got, want)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("the Go runtime's memory limit is %d, want %d", got, want)
	}
}
