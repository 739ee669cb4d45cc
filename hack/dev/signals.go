package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// make dev runs this program under make, which is what a user signals
// (closing the terminal, SIGHUP, and Ctrl-\, SIGQUIT, stop it too):
//
//   - Ctrl-C at a terminal signals the terminal's foreground process group,
//     make included, and make, interrupted, exits 2 whatever its recipe
//     does. So, at a terminal, this program takes the foreground for a
//     process group of its own: Ctrl-C reaches only it, it stops the
//     cluster, gives the terminal back, and make exits 0.
//   - SIGTERM to make is passed on by make to its recipe's process, this
//     one (the recipe execs it).
//   - SIGINT to make is not passed on: make waits for its recipe, with
//     SIGINT blocked while its handler runs. A parent make that blocks
//     SIGINT has been interrupted, and this program stops as if it had.

// terminal is the descriptor of the terminal whose foreground this
// program took, and foreground the process group it took it from; -1
// when it took none.
var terminal, foreground = -1, -1

// stopSignals arranges the above and says, once, what stopped the
// program.
func stopSignals() <-chan string {
	stop := make(chan string, 3)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		stop <- (<-sig).String()
		for range sig {
			fmt.Println("Stopping already: the control plane takes a few seconds.")
		}
	}()
	takeForeground()
	// A make that blocks SIGINT from the start (started so by its shell)
	// says nothing by blocking it.
	if ppid := os.Getppid(); isMake(ppid) && !blocksSIGINT(ppid) {
		go func() {
			for seen := 0; ; time.Sleep(250 * time.Millisecond) {
				if !blocksSIGINT(ppid) {
					seen = 0
					continue
				}
				// Twice in a row: not a passing block around a
				// critical section.
				if seen++; seen == 2 {
					stop <- "make was interrupted"
					return
				}
			}
		}()
	}
	return stop
}

// takeForeground moves this program into a process group of its own and
// makes it the terminal's foreground, when standard input is a terminal
// whose foreground is this program's group.
func takeForeground() {
	fd := int(os.Stdin.Fd())
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		return // not a terminal, or running in the background
	}
	// A background group that sets the foreground is sent SIGTTOU. And
	// with the foreground ours, Ctrl-Z would stop this program alone, with
	// no shell to see it stopped and take the terminal back: it is ignored.
	signal.Ignore(syscall.SIGTTOU, syscall.SIGTSTP)
	if err := unix.Setpgid(0, 0); err != nil {
		return
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
		_ = unix.Setpgid(0, fg)
		return
	}
	terminal, foreground = fd, fg
}

// restoreTerminal gives the terminal's foreground back.
func restoreTerminal() {
	if terminal >= 0 {
		if err := unix.IoctlSetPointerInt(terminal, unix.TIOCSPGRP, foreground); err != nil {
			fmt.Fprintln(os.Stderr, "dev: giving the terminal back:", err)
		}
	}
}

func isMake(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "make"
}

// blocksSIGINT says whether process pid blocks SIGINT now.
func blocksSIGINT(pid int) bool {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for line := range bytes.Lines(status) {
		if hex, ok := bytes.CutPrefix(line, []byte("SigBlk:")); ok {
			mask, err := strconv.ParseUint(string(bytes.TrimSpace(hex)), 16, 64)
			return err == nil && mask&(1<<(uint(syscall.SIGINT)-1)) != 0
		}
	}
	return false
}
