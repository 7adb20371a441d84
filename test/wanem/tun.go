package main

// TUN devices are created directly inside the gateway namespaces: a throwaway OS thread joins
// the target namespace (setns is per-thread for network namespaces), opens /dev/net/tun there
// and is then discarded. The file descriptor keeps working from any thread. The devices are not
// persistent, so they vanish when wanem exits, which keeps cleanup trivial.

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

const (
	iffTun        = 0x0001
	iffNoPI       = 0x1000
	iffVnetHdr    = 0x4000
	tunSetIff     = 0x400454ca
	tunSetOffload = 0x400454d0
	tunFCsum      = 0x01
	tunFTSO4      = 0x02
	tunFTSO6      = 0x04
	tunFTSOECN    = 0x08

	// vnetHdrLen is the virtio_net_hdr that IFF_VNET_HDR puts before every packet: it carries
	// GSO (segmentation offload) and partial-checksum metadata, which wanem passes through.
	vnetHdrLen = 10
)

type ifreq struct {
	name  [16]byte
	flags uint16
	_     [22]byte
}

func netnsPath(ns string) string {
	if strings.HasPrefix(ns, "/") {
		return ns
	}
	return "/var/run/netns/" + ns
}

// openTun creates TUN device dev in network namespace ns ("" = wanem's own) and returns a
// blocking file descriptor for it.
func openTun(ns, dev string) (int, error) {
	if len(dev) == 0 || len(dev) > 15 {
		return -1, fmt.Errorf("bad interface name %q (1..15 chars)", dev)
	}
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: if this thread switched namespaces, Go destroys it when we return.
		runtime.LockOSThread()
		if ns != "" {
			nsFile, err := os.Open(netnsPath(ns))
			if err != nil {
				done <- result{-1, err}
				return
			}
			defer nsFile.Close()
			if _, _, e := syscall.RawSyscall(sysSetns, nsFile.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
				done <- result{-1, fmt.Errorf("setns %s: %v", ns, e)}
				return
			}
		}
		fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			done <- result{-1, fmt.Errorf("open /dev/net/tun: %v", err)}
			return
		}
		var req ifreq
		copy(req.name[:], dev)
		req.flags = iffTun | iffNoPI | iffVnetHdr
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); e != 0 {
			syscall.Close(fd)
			done <- result{-1, fmt.Errorf("TUNSETIFF %s in %q: %v", dev, ns, e)}
			return
		}
		done <- result{fd, nil}
	}()
	r := <-done
	return r.fd, r.err
}

// setOffload lets the kernel hand this TUN device TCP segmentation-offload super-packets (up to
// 64 KiB, one read instead of ~44) and partially checksummed packets, or makes it segment and
// checksum everything first. Shaping needs real packets: a rate limit or loss applied to a
// 64 KiB super-packet would be a burst or a 44-segment loss, so offload is on only while the
// direction has neither.
func setOffload(fd int, on bool) error {
	var flags uintptr
	if on {
		flags = tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOECN
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetOffload, flags); e != 0 {
		return fmt.Errorf("TUNSETOFFLOAD: %v", e)
	}
	return nil
}
