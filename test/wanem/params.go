package main

// Link parameters of one direction and their textual form ("rate=100M delay=25ms loss=0.01"),
// shared by the command-line flags and the control socket so both speak one syntax.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Params describe one direction of the emulated link. Zero values mean "off": no rate limit,
// no delay, no jitter, no loss, no queue limit.
type Params struct {
	RateBps      int64         `json:"rateBps"`      // serialization rate in bit/s of IP packets; 0 = unlimited
	Delay        time.Duration `json:"delayNs"`      // one-way propagation delay
	Jitter       time.Duration `json:"jitterNs"`     // uniform ±jitter added to the delay
	Loss         float64       `json:"loss"`         // Bernoulli drop probability per packet, 0..1
	QueueBytes   int64         `json:"queueBytes"`   // drop-tail limit of the serialization backlog; 0 = none
	QueuePackets int           `json:"queuePackets"` // same, counted in packets; 0 = none
	Reorder      bool          `json:"reorder"`      // let jitter reorder packets (off: FIFO, like a wire)
	Down         bool          `json:"down"`         // link cut: drop everything, including packets in flight
	// GSO keeps segmentation offload on under a rate limit: super-packets of up to 64 KiB are
	// serialized as one unit (a 0.5 ms burst at 1 Gbit/s). Cheaper at high rates, coarser timing.
	GSO bool `json:"gso"`
}

// parseRate accepts plain bit/s or a k/M/G suffix (decimal, like tc): "100M" = 100e6 bit/s.
func parseRate(s string) (int64, error) {
	mult := 1.0
	t := strings.TrimSuffix(strings.ToLower(s), "bit")
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1e3, strings.TrimSuffix(t, "k")
	case strings.HasSuffix(t, "m"):
		mult, t = 1e6, strings.TrimSuffix(t, "m")
	case strings.HasSuffix(t, "g"):
		mult, t = 1e9, strings.TrimSuffix(t, "g")
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad rate %q", s)
	}
	return int64(f * mult), nil
}

// parseDuration accepts a Go duration ("25ms", "1.5ms") or a bare number of milliseconds.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return time.Duration(f * float64(time.Millisecond)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("bad boolean %q", s)
}

// apply sets one key on p. Unknown keys are errors so that a typo in a test is loud.
func (p *Params) apply(key, val string) error {
	var err error
	switch key {
	case "rate":
		p.RateBps, err = parseRate(val)
	case "delay":
		p.Delay, err = parseDuration(val)
	case "jitter":
		p.Jitter, err = parseDuration(val)
	case "loss":
		p.Loss, err = strconv.ParseFloat(val, 64)
		if err == nil && (p.Loss < 0 || p.Loss > 1) {
			err = fmt.Errorf("loss %v outside 0..1", p.Loss)
		}
	case "queue_bytes":
		p.QueueBytes, err = strconv.ParseInt(val, 10, 64)
	case "queue_packets":
		p.QueuePackets, err = strconv.Atoi(val)
	case "reorder":
		p.Reorder, err = parseBool(val)
	case "down":
		p.Down, err = parseBool(val)
	case "gso":
		p.GSO, err = parseBool(val)
	default:
		err = fmt.Errorf("unknown key %q", key)
	}
	return err
}

// Update is a parsed "dir=… key=value …" line: which directions, and the changes to apply.
type Update struct {
	AB, BA bool
	pairs  [][2]string
}

// parseUpdate parses space-separated key=value pairs. dir=ab|ba|both selects the direction
// (default both). The pairs are validated against a scratch Params before anything changes.
func parseUpdate(fields []string) (Update, error) {
	u := Update{AB: true, BA: true}
	var scratch Params
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return u, fmt.Errorf("expected key=value, got %q", f)
		}
		if k == "dir" {
			switch v {
			case "ab":
				u.AB, u.BA = true, false
			case "ba":
				u.AB, u.BA = false, true
			case "both":
				u.AB, u.BA = true, true
			default:
				return u, fmt.Errorf("bad dir %q (ab|ba|both)", v)
			}
			continue
		}
		if err := scratch.apply(k, v); err != nil {
			return u, err
		}
		u.pairs = append(u.pairs, [2]string{k, v})
	}
	return u, nil
}

func (u Update) applyTo(p *Params) {
	for _, kv := range u.pairs {
		_ = p.apply(kv[0], kv[1]) // validated in parseUpdate
	}
}
