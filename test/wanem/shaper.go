package main

// The timing model of one direction, kept free of I/O so that it can be unit-tested.
//
// A packet arriving at time `now` first passes the link state (down, random loss), then the
// bottleneck: a single serializer of RateBps that is busy until linkFree. The packet finishes
// serialization at txDone = max(now, linkFree) + size*8/rate; the bytes still waiting for the
// serializer form the drop-tail queue. After serialization the packet propagates for
// delay ± jitter and is delivered at deliverAt. Without Reorder, deliverAt never precedes the
// previous packet's, like packets on one wire.

import "math/rand/v2"

type verdict int

const (
	pass verdict = iota
	dropDown
	dropLoss
	dropQueue
)

type shaper struct {
	linkFree    int64   // ns: when the serializer finishes the last admitted packet
	lastDeliver int64   // ns: latest delivery time handed out
	departures  []int64 // txDone of packets still queued or serializing, ascending
	head        int     // index of the first live entry in departures
	rng         *rand.Rand
}

func newShaper(seed uint64) *shaper {
	return &shaper{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// queued drops departures that are done by now and returns how many packets remain.
func (s *shaper) queued(now int64) int {
	for s.head < len(s.departures) && s.departures[s.head] <= now {
		s.head++
	}
	if s.head > 1024 && s.head*2 > len(s.departures) {
		s.departures = append(s.departures[:0], s.departures[s.head:]...)
		s.head = 0
	}
	return len(s.departures) - s.head
}

// admit decides the fate of a packet of size bytes arriving at now (ns) and, if it passes,
// returns its delivery time.
func (s *shaper) admit(now int64, size int, p *Params) (int64, verdict) {
	if p.Down {
		return 0, dropDown
	}
	if p.Loss > 0 && s.rng.Float64() < p.Loss {
		return 0, dropLoss
	}
	txDone := now
	if p.RateBps > 0 {
		start := max(now, s.linkFree)
		backlogPackets := s.queued(now)
		if p.QueuePackets > 0 && backlogPackets >= p.QueuePackets {
			return 0, dropQueue
		}
		if p.QueueBytes > 0 {
			backlogBytes := (start - now) * p.RateBps / 8e9
			if backlogBytes+int64(size) > p.QueueBytes {
				return 0, dropQueue
			}
		}
		txDone = start + int64(size)*8e9/p.RateBps
		s.linkFree = txDone
		s.departures = append(s.departures, txDone)
	} else {
		s.linkFree = now
	}
	at := txDone + int64(p.Delay)
	if p.Jitter > 0 {
		at += int64((s.rng.Float64()*2 - 1) * float64(p.Jitter))
		at = max(at, txDone)
	}
	if !p.Reorder {
		at = max(at, s.lastDeliver)
	}
	s.lastDeliver = max(s.lastDeliver, at)
	return at, pass
}
