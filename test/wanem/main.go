// wanem is a userspace WAN link emulator: it forwards IP packets between two TUN devices, each
// created in its own network namespace, with per-direction rate, delay, jitter, loss and a
// drop-tail queue. See README.md for why it exists and how to drive it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	aNs := flag.String("a-netns", "", "network namespace (name or path) for side A's TUN device")
	aDev := flag.String("a-dev", "wan0", "side A TUN device name")
	bNs := flag.String("b-netns", "", "network namespace (name or path) for side B's TUN device")
	bDev := flag.String("b-dev", "wan0", "side B TUN device name")
	ctl := flag.String("ctl", "", "unix socket path for runtime control (optional)")
	both := flag.String("link", "", `parameters of both directions, e.g. "rate=100M delay=25ms jitter=1ms loss=0 queue_bytes=625000"`)
	ab := flag.String("ab", "", "parameters of direction A->B only (applied after -link)")
	ba := flag.String("ba", "", "parameters of direction B->A only (applied after -link)")
	seed := flag.Uint64("seed", 1, "random seed for loss and jitter")
	quantum := flag.Duration("quantum", 0, "minimum spacing of delivery wake-ups; packets may be late by up to this (trades timing precision for CPU)")
	flag.Parse()

	// Die with the test process that started us, even if it is SIGKILLed.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	if os.Getppid() == 1 {
		os.Exit(1)
	}
	// Readers and writers mostly sit in blocking syscalls; spare Ps let a woken goroutine run
	// at once instead of waiting for sysmon to retake a P from a blocked thread.
	procs := max(8, runtime.NumCPU())
	if v, err := strconv.Atoi(os.Getenv("WANEM_PROCS")); err == nil && v > 0 {
		procs = v
	}
	runtime.GOMAXPROCS(procs)

	startProfile()
	var pab, pba Params
	for _, spec := range []struct {
		text    string
		targets []*Params
	}{{*both, []*Params{&pab, &pba}}, {*ab, []*Params{&pab}}, {*ba, []*Params{&pba}}} {
		u, err := parseUpdate(strings.Fields(spec.text))
		if err != nil {
			fatal("bad link parameters %q: %v", spec.text, err)
		}
		for _, p := range spec.targets {
			u.applyTo(p)
		}
	}

	fdA, err := openTun(*aNs, *aDev)
	if err != nil {
		fatal("%v", err)
	}
	fdB, err := openTun(*bNs, *bDev)
	if err != nil {
		fatal("%v", err)
	}
	dirAB := newDirection("ab", fdA, fdB, pab, *seed)
	dirBA := newDirection("ba", fdB, fdA, pba, *seed+1)
	dirAB.quantum, dirBA.quantum = *quantum, *quantum
	for _, d := range []*direction{dirAB, dirBA} {
		d.mu.Lock()
		d.updateOffload()
		d.mu.Unlock()
	}
	c := &controller{ab: dirAB, ba: dirBA}
	if *ctl != "" {
		if err := c.serve(*ctl); err != nil {
			fatal("control socket: %v", err)
		}
	}
	for _, d := range []*direction{dirAB, dirBA} {
		go d.readLoop()
		go d.writeLoop()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	ready, _ := json.Marshal(map[string]any{"ready": true, "pid": os.Getpid(), "ctl": *ctl})
	fmt.Println(string(ready))
	<-sigs
	stopProfile()
	if *ctl != "" {
		_ = os.Remove(*ctl)
	}
	// Closing the fds removes the (non-persistent) TUN devices.
	os.Exit(0)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wanem: "+format+"\n", args...)
	os.Exit(1)
}
