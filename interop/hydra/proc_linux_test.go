//go:build linux

package hydra_test

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts Hydra in a process group of its own, so that stopping it
// reaches everything it runs, and has the kernel kill it if the test binary
// dies first (a panic, a -timeout, a SIGKILL): no test run leaves a Hydra
// behind. Pdeathsig fires when the thread that started the process exits;
// the Go runtime does not end its threads, except one locked with
// runtime.LockOSThread, which this package never does.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to Hydra's process group (its PID, negated).
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
