//go:build !linux

package hydra_test

import (
	"os/exec"
	"syscall"
)

// setProcAttr does nothing here: the suite runs Hydra in CI on Linux only
// (proc_linux_test.go); elsewhere it must at least compile.
func setProcAttr(*exec.Cmd) {}

// signalGroup signals the Hydra process itself; where SIGTERM cannot be
// sent, it kills it.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if err := cmd.Process.Signal(sig); err != nil {
		return cmd.Process.Kill()
	}
	return nil
}
