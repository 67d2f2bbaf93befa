// Package testport hands tests loopback TCP ports for servers they start
// in other processes (Envoy, sendguard, redis-server, etcd), where the
// test cannot keep the listener itself.
//
// The usual trick, listen on :0 and close, returns a port from the
// kernel's ephemeral range, which the kernel hands out again to the next
// outgoing connection or :0 listener of any process; under `go test ./...`
// one package's client connection took another package's Envoy port
// ("bind: address already in use"). So ports here come from below the
// ephemeral range, where the kernel never assigns one on its own, and each
// is reserved with an exclusive flock on a file shared by every test
// process on the machine, held until the test ends.
package testport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Get reserves a free loopback port for the rest of tb.
func Get(tb testing.TB) int {
	tb.Helper()
	port, release, err := Reserve()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return port
}

// Addr is Get as "127.0.0.1:port".
func Addr(tb testing.TB) string {
	tb.Helper()
	return "127.0.0.1:" + strconv.Itoa(Get(tb))
}

// Reserve is Get for code without a testing.TB: the port stays reserved
// until release is called.
func Reserve() (port int, release func(), err error) {
	lo, hi := span()
	return reserveIn(lo, hi)
}

func reserveIn(lo, hi int) (port int, release func(), err error) {
	dir := filepath.Join(os.TempDir(), "sendguard-testports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, nil, err
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	for i := range n {
		p := lo + (start+i)%n
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // another test holds it
			continue
		}
		if !bindable(p) { // taken by something that is not a test
			f.Close()
			continue
		}
		return p, func() { f.Close() }, nil // closing drops the lock
	}
	return 0, nil, errors.New("testport: no free port in " + fmt.Sprint(lo, "-", hi))
}

func bindable(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// span is the range ports are taken from: below the kernel's ephemeral
// range (ip_local_port_range), or above it when too little lies below.
func span() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && a <= z {
				elo, ehi = a, z
			}
		}
	}
	if elo-1-20000 >= 1000 {
		return 20000, elo - 1
	}
	if 65535-(ehi+1) >= 1000 {
		return ehi + 1, 65535
	}
	return 20000, 30000 // a range wider than the machine's: take our chances
}
