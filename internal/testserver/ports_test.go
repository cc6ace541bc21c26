package testserver

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"
)

// TestPortTakenIsPickedAgain: when a port picked for a new server is taken
// by the time the server binds it (another test's connection got it), the
// server gets another port instead of failing the test, and the test talks
// to it, not to whatever holds the taken port.
func TestPortTakenIsPickedAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		// takenPick is which pick (1: the first) hands out the taken port.
		takenPick int
		start     func(t *testing.T) (port int, check func())
	}{
		{name: "postgres", takenPick: 1, start: func(t *testing.T) (int, func()) {
			p := StartPostgres(t)
			return p.Port, func() { p.Exec("SELECT 1") }
		}},
		{name: "redis", takenPick: 1, start: func(t *testing.T) (int, func()) {
			r := StartRedis(t)
			return r.Port, func() {
				info, err := redis.String(r.Do("INFO", "server"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(info, "process_id:"+strconv.Itoa(r.PID())+"\r\n") {
					t.Errorf("the server answering is not the one started (pid %d):\n%s", r.PID(), info)
				}
			}
		}},
		{name: "redis cluster bus", takenPick: 2, start: func(t *testing.T) (int, func()) {
			r := StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(pickPort(t)))
			nodes, err := redis.String(r.Do("CLUSTER", "NODES"), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, bus, _ := strings.Cut(strings.Fields(nodes)[1], "@")
			bus, _, _ = strings.Cut(bus, ",")
			port, _ := strconv.Atoi(bus)
			return port, func() {}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			taken := l.Addr().(*net.TCPAddr).Port
			picks := 0
			pickPort = func(t TB) int {
				picks++
				if picks == tc.takenPick {
					return taken
				}
				return FreePort(t)
			}
			defer func() { pickPort = FreePort }()
			port, check := tc.start(t)
			if port == taken || picks <= tc.takenPick {
				t.Errorf("port %d after %d picks; want another than the taken %d, picked again", port, picks, taken)
			}
			check()
		})
	}
}
