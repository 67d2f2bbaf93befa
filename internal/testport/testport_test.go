package testport

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// TestReserveDistinct: ports reserved at once from many goroutines are
// distinct, outside the kernel's ephemeral range and bindable, and a
// released port can be had again.
func TestReserveDistinct(t *testing.T) {
	lo, hi := span()
	const n = 64
	var (
		mu    sync.Mutex
		seen  = map[int]bool{}
		wg    sync.WaitGroup
		fails []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, release, err := Reserve()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails = append(fails, err)
				return
			}
			t.Cleanup(release)
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			seen[p] = true
			if p < lo || p > hi {
				t.Errorf("port %d outside %d-%d", p, lo, hi)
			}
		}()
	}
	wg.Wait()
	for _, err := range fails {
		t.Fatal(err)
	}
	for p := range seen {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("reserved port %d: %v", p, err)
			continue
		}
		l.Close()
	}
}

// TestHeldPortNotReused: while a port is held it is not handed out again
// (here the span is that one port); once released, it is.
func TestHeldPortNotReused(t *testing.T) {
	held, release, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err := reserveIn(held, held); err == nil {
		t.Fatalf("held port %d handed out again (%d)", held, p)
	}
	release()
	p, again, err := reserveIn(held, held)
	if err != nil || p != held {
		t.Fatalf("released port %d: got %d, %v", held, p, err)
	}
	again()
}
