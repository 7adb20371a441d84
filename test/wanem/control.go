package main

// Runtime control over a unix socket, one command per line and one reply line each:
//
//	set [dir=ab|ba|both] key=value ...   -> ok | error: ...
//	get                                  -> {"ab":{params},"ba":{params}}
//	stats                                -> {"ab":{counters},"ba":{counters}}
//	ping                                 -> ok
//
// Tests use it to cut the link (set down=1) and restore it (set down=0) mid-transfer.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
)

type controller struct {
	ab, ba *direction
}

func (c *controller) handle(line string) string {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "error: empty command"
	}
	switch fields[0] {
	case "ping":
		return "ok"
	case "set":
		u, err := parseUpdate(fields[1:])
		if err != nil {
			return "error: " + err.Error()
		}
		if u.AB {
			c.ab.setParams(u)
		}
		if u.BA {
			c.ba.setParams(u)
		}
		return "ok"
	case "get":
		return mustJSON(map[string]Params{"ab": c.ab.getParams(), "ba": c.ba.getParams()})
	case "stats":
		return mustJSON(map[string]Stats{"ab": c.ab.snapshot(), "ba": c.ba.snapshot()})
	}
	return fmt.Sprintf("error: unknown command %q (set|get|stats|ping)", fields[0])
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

func (c *controller) serve(path string) error {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					if _, err := fmt.Fprintln(conn, c.handle(sc.Text())); err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}
