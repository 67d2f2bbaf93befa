package redistest_test

import (
	"testing"

	"github.com/sendguard/sendguard/internal/store/redistest"
)

// TestStartCluster: three masters with a replica each form a cluster in
// which a hash-tagged key has one master.
func TestStartCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	if len(c.Nodes) != 6 {
		t.Fatalf("StartCluster(3, 1) started %d nodes, want 6", len(c.Nodes))
	}
	if a, b := c.Slot("sendguard:{shop}:quota"), c.Slot("sendguard:{shop}:fan:00"); a != b {
		t.Errorf("Slot of two keys tagged {shop} = %d, %d; want equal", a, b)
	}
	if m := c.MasterOf("sendguard:{shop}:quota"); !m.Running() {
		t.Errorf("MasterOf returned a stopped server %s", m.Addr())
	}
}

// TestStartSentinel: a master, a replica and three Sentinels agree on the
// master.
func TestStartSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	if m := s.Master(); m != s.Data[0] {
		t.Errorf("Sentinels name %s master, want %s", m.Addr(), s.Data[0].Addr())
	}
}
