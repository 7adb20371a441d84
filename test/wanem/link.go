package main

// One direction of the link: a reader goroutine that blocks on the ingress TUN, runs each packet
// through the shaper and queues it by delivery time, and a writer goroutine, pinned to its own OS
// thread, that sleeps with clock_nanosleep (Go's timers only resolve to about 1 ms here, which
// would bias a 25 ms delay by 4%) and writes packets to the egress TUN when they are due.

import (
	"container/heap"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxHeldBytes bounds the memory one direction may hold in its delay line (a 10 Gbit/s burst
// into a 200 ms delay); beyond it packets are dropped rather than exhausting memory.
const maxHeldBytes = 256 << 20

// Stats are monotonically increasing counters of one direction.
type Stats struct {
	RxPackets   uint64 `json:"rxPackets"`
	RxBytes     uint64 `json:"rxBytes"`
	TxPackets   uint64 `json:"txPackets"`
	TxBytes     uint64 `json:"txBytes"`
	DropDown    uint64 `json:"dropDown"`
	DropLoss    uint64 `json:"dropLoss"`
	DropQueue   uint64 `json:"dropQueue"`
	DropMemory  uint64 `json:"dropMemory"`
	Reordered   uint64 `json:"reordered"`
	WriteErrors uint64 `json:"writeErrors"`
}

type packet struct {
	at   int64 // delivery time, ns since epoch0
	seq  uint64
	data []byte
}

type packetHeap []*packet

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(*packet)) }
func (h *packetHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

var epoch0 = time.Now()

func nanotime() int64 { return int64(time.Since(epoch0)) }

// Packet buffers (virtio header included) come from two pools: MTU-sized packets and
// segmentation-offload super-packets of up to 64 KiB.
const (
	smallBufSize = 2048
	largeBufSize = 65536 + vnetHdrLen
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBufSize); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBufSize); return &b }}
)

func getBuf(n int) []byte {
	if n <= smallBufSize {
		return (*smallPool.Get().(*[]byte))[:n]
	}
	if n <= largeBufSize {
		return (*largePool.Get().(*[]byte))[:n]
	}
	return make([]byte, n)
}

func putBuf(b []byte) {
	switch cap(b) {
	case smallBufSize:
		b = b[:smallBufSize]
		smallPool.Put(&b)
	case largeBufSize:
		b = b[:largeBufSize]
		largePool.Put(&b)
	}
}

type direction struct {
	name    string
	in, out int

	mu           sync.Mutex
	params       Params
	shaper       *shaper
	queue        packetHeap
	heldBytes    int64
	seq          uint64
	writing      bool // the writer has popped a packet and not yet written it
	wake         chan struct{}
	quantum      time.Duration // minimum spacing of the writer's wake-ups
	offload      bool          // segmentation offload currently enabled on the ingress device
	offloadKnown bool

	stats Stats // updated with atomics
}

func newDirection(name string, in, out int, p Params, seed uint64) *direction {
	return &direction{name: name, in: in, out: out, params: p, shaper: newShaper(seed), wake: make(chan struct{}, 1)}
}

func (d *direction) setParams(u Update) {
	d.mu.Lock()
	u.applyTo(&d.params)
	d.updateOffload()
	d.mu.Unlock()
}

// updateOffload turns segmentation offload on the ingress device on exactly while this direction
// drops nothing at random and either has no rate limit or allows GSO under it. Called with d.mu held.
func (d *direction) updateOffload() {
	want := (d.params.RateBps == 0 || d.params.GSO) && d.params.Loss == 0
	if d.offloadKnown && want == d.offload {
		return
	}
	if err := setOffload(d.in, want); err != nil {
		fmt.Fprintf(os.Stderr, "wanem: %s: %v\n", d.name, err)
		return
	}
	d.offload, d.offloadKnown = want, true
}

func (d *direction) getParams() Params {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.params
}

func (d *direction) snapshot() Stats {
	s := &d.stats
	return Stats{
		RxPackets: atomic.LoadUint64(&s.RxPackets), RxBytes: atomic.LoadUint64(&s.RxBytes),
		TxPackets: atomic.LoadUint64(&s.TxPackets), TxBytes: atomic.LoadUint64(&s.TxBytes),
		DropDown: atomic.LoadUint64(&s.DropDown), DropLoss: atomic.LoadUint64(&s.DropLoss),
		DropQueue: atomic.LoadUint64(&s.DropQueue), DropMemory: atomic.LoadUint64(&s.DropMemory),
		Reordered: atomic.LoadUint64(&s.Reordered), WriteErrors: atomic.LoadUint64(&s.WriteErrors),
	}
}

func (d *direction) write(b []byte) {
	for {
		_, err := syscall.Write(d.out, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// EIO while the egress device is still down, for example; the packet is lost.
			atomic.AddUint64(&d.stats.WriteErrors, 1)
			return
		}
		atomic.AddUint64(&d.stats.TxPackets, 1)
		atomic.AddUint64(&d.stats.TxBytes, uint64(len(b)-vnetHdrLen))
		return
	}
}

func (d *direction) readLoop() {
	buf := make([]byte, largeBufSize)
	for {
		n, err := syscall.Read(d.in, buf)
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "wanem: %s: read: %v\n", d.name, err)
			os.Exit(1)
		}
		if n <= vnetHdrLen {
			continue
		}
		size := n - vnetHdrLen // the IP packet (a super-packet while offload is on)
		atomic.AddUint64(&d.stats.RxPackets, 1)
		atomic.AddUint64(&d.stats.RxBytes, uint64(size))
		now := nanotime()
		d.mu.Lock()
		at, v := d.shaper.admit(now, size, &d.params)
		switch {
		case v == dropDown:
			atomic.AddUint64(&d.stats.DropDown, 1)
		case v == dropLoss:
			atomic.AddUint64(&d.stats.DropLoss, 1)
		case v == dropQueue:
			atomic.AddUint64(&d.stats.DropQueue, 1)
		case d.heldBytes+int64(size) > maxHeldBytes:
			atomic.AddUint64(&d.stats.DropMemory, 1)
		case at <= now && len(d.queue) == 0 && !d.writing:
			// Due now and nothing ahead of it: write directly and skip the writer's wake-up
			// (the unlimited, no-delay case). Later packets come from this goroutine, so order holds.
			d.seq++
			d.mu.Unlock()
			d.write(buf[:n])
			d.mu.Lock()
		default:
			d.seq++
			p := &packet{at: at, seq: d.seq, data: getBuf(n)}
			copy(p.data, buf[:n])
			wasEmpty := len(d.queue) == 0
			earlier := !wasEmpty && at < d.queue[0].at
			heap.Push(&d.queue, p)
			d.heldBytes += int64(size)
			if wasEmpty || earlier {
				select {
				case d.wake <- struct{}{}:
				default:
				}
			}
		}
		d.mu.Unlock()
	}
}

// maxSleep bounds one sleep of the writer so that a packet that jumps the queue (reorder mode)
// is late by at most this much.
const maxSleep = 200 * time.Microsecond

func (d *direction) writeLoop() {
	runtime.LockOSThread()
	// The default 50 µs timer slack would add to every delay; ask for 1 ns on this thread.
	syscall.RawSyscall(syscall.SYS_PRCTL, 29 /* PR_SET_TIMERSLACK */, 1, 0)
	var lastSeq uint64
	var lastWake int64
	quantum := int64(d.quantum)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 {
			d.mu.Unlock()
			<-d.wake
			d.mu.Lock()
		}
		head := d.queue[0]
		now := nanotime()
		// With a quantum, wake at most once per quantum and deliver everything due by then:
		// fewer timer wake-ups (costly in a VM) for up to one quantum of extra delay.
		if head.at > now {
			wait := max(head.at, lastWake+quantum) - now
			reorder := d.params.Reorder
			d.mu.Unlock()
			if reorder {
				wait = min(wait, int64(maxSleep))
			}
			sleepNs(wait)
			lastWake = nanotime()
			continue
		}
		heap.Pop(&d.queue)
		d.heldBytes -= int64(len(head.data) - vnetHdrLen)
		// A cut link also loses what is on the wire.
		down := d.params.Down
		d.writing = true
		d.mu.Unlock()
		if head.seq < lastSeq {
			atomic.AddUint64(&d.stats.Reordered, 1)
		}
		lastSeq = max(lastSeq, head.seq)
		if down {
			atomic.AddUint64(&d.stats.DropDown, 1)
		} else {
			d.write(head.data)
		}
		putBuf(head.data)
		d.mu.Lock()
		d.writing = false
		d.mu.Unlock()
	}
}

func sleepNs(ns int64) {
	ts := syscall.NsecToTimespec(ns)
	for {
		var rem syscall.Timespec
		if err := syscall.Nanosleep(&ts, &rem); err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
