package options

import (
	"github.com/go-logr/logr"

	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{
	"/sys/fs/cgroup/memory.max",
	"/sys/fs/cgroup/memory/memory.limit_in_bytes",
}

// memoryLimitShare is the part of the container's limit the Go heap may
// use; the rest is for stacks, the binary and memory not yet returned.
const memoryLimitShare = 0.9

// setMemoryLimit gives the Go runtime a soft memory limit of 90% of the
// container's, unless GOMEMLIMIT sets one, so that the garbage collector
// works harder near the limit instead of letting the heap double and the
// container be killed. It returns the limit set, or 0.
func setMemoryLimit(readFile func(string) ([]byte, error)) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, ok := containerMemoryLimit(readFile)
	if !ok {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// containerMemoryLimit reads the container's memory limit; ok is false when
// there is none.
func containerMemoryLimit(readFile func(string) ([]byte, error)) (int64, bool) {
	for _, f := range cgroupMemoryFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		// "max" (v2) or a number near the largest (v1) means no limit.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// SetMemoryLimit sets the Go memory limit from the container's (see
// setMemoryLimit) and logs it.
func SetMemoryLimit(log logr.Logger) {
	if limit := setMemoryLimit(os.ReadFile); limit > 0 {
		log.Info("Set the Go memory limit from the container's", "bytes", limit)
	}
}
