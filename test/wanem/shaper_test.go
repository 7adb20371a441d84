package main

import (
	"testing"
	"time"
)

func TestRateSerializesBackToBackPackets(t *testing.T) {
	s := newShaper(1)
	p := &Params{RateBps: 100e6, Delay: 25 * time.Millisecond}
	// 1500 B at 100 Mbit/s = 120 µs each; three arriving together leave 120 µs apart.
	for i, want := range []int64{120_000, 240_000, 360_000} {
		at, v := s.admit(0, 1500, p)
		if v != pass || at != want+int64(25*time.Millisecond) {
			t.Fatalf("packet %d: at=%d verdict=%d, want %d", i, at, v, want+int64(25*time.Millisecond))
		}
	}
}

func TestQueueBytesDropTail(t *testing.T) {
	s := newShaper(1)
	p := &Params{RateBps: 8e6, QueueBytes: 3000} // 1 byte per µs
	passed := 0
	for range 5 {
		if _, v := s.admit(0, 1000, p); v == pass {
			passed++
		}
	}
	if passed != 3 {
		t.Fatalf("passed %d, want 3 (3000 B queue)", passed)
	}
	// After 1000 µs one packet has left, so one more fits.
	if _, v := s.admit(1_000_000, 1000, p); v != pass {
		t.Fatalf("expected room after one departure")
	}
}

func TestQueuePacketsDropTail(t *testing.T) {
	s := newShaper(1)
	p := &Params{RateBps: 8e6, QueuePackets: 2}
	var verdicts []verdict
	for range 3 {
		_, v := s.admit(0, 100, p)
		verdicts = append(verdicts, v)
	}
	if verdicts[0] != pass || verdicts[1] != pass || verdicts[2] != dropQueue {
		t.Fatalf("verdicts %v", verdicts)
	}
}

func TestJitterKeepsOrderUnlessReorder(t *testing.T) {
	for _, reorder := range []bool{false, true} {
		s := newShaper(7)
		p := &Params{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Reorder: reorder}
		var last int64
		inversions := 0
		for i := range 2000 {
			at, _ := s.admit(int64(i)*10_000, 100, p)
			if at < last {
				inversions++
			}
			last = max(last, at)
			if at < int64(i)*10_000+int64(5*time.Millisecond) || at > int64(i)*10_000+int64(15*time.Millisecond) {
				if !(!reorder && at <= last) {
					t.Fatalf("delay out of range: %d", at-int64(i)*10_000)
				}
			}
		}
		if !reorder && inversions != 0 {
			t.Fatalf("reordered %d packets without reorder", inversions)
		}
		if reorder && inversions == 0 {
			t.Fatalf("expected reordering with reorder=1")
		}
	}
}

func TestLossAndDown(t *testing.T) {
	s := newShaper(3)
	drops := 0
	for range 10000 {
		if _, v := s.admit(0, 100, &Params{Loss: 0.1}); v == dropLoss {
			drops++
		}
	}
	if drops < 900 || drops > 1100 {
		t.Fatalf("loss 0.1 dropped %d of 10000", drops)
	}
	if _, v := s.admit(0, 100, &Params{Down: true}); v != dropDown {
		t.Fatalf("down link passed a packet")
	}
}

func TestParseUpdate(t *testing.T) {
	u, err := parseUpdate([]string{"dir=ab", "rate=100M", "delay=25", "jitter=1.5ms", "loss=0.01", "queue_bytes=625000", "down=1"})
	if err != nil {
		t.Fatal(err)
	}
	var p Params
	u.applyTo(&p)
	if !u.AB || u.BA || p.RateBps != 100e6 || p.Delay != 25*time.Millisecond || p.Jitter != 1500*time.Microsecond ||
		p.Loss != 0.01 || p.QueueBytes != 625000 || !p.Down {
		t.Fatalf("parsed %+v %+v", u, p)
	}
	if _, err := parseUpdate([]string{"delya=5"}); err == nil {
		t.Fatal("typo accepted")
	}
}
