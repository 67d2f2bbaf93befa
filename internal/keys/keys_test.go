package keys

import "testing"

func TestLookup(t *testing.T) {
	r := NewKeyring([]Entry{
		{SHA256: Hash("good-key"), Key: Key{ID: "k1", Account: "acme"}},
		{SHA256: Hash("old-key"), Key: Key{ID: "k2", Account: "acme", Revoked: true}},
	})
	tests := []struct {
		auth    string
		want    Status
		account string
	}{
		{"Bearer good-key", Valid, "acme"},
		{"bearer good-key", Valid, "acme"},
		{"BEARER   good-key", Valid, "acme"},
		{"Bearer old-key", Revoked, "acme"},
		{"Bearer other", Unknown, ""},
		{"", Unknown, ""},
		{"Bearer", Unknown, ""},
		{"Bearer ", Unknown, ""},
		{"Basic Z29vZC1rZXk=", Unknown, ""},
		{"good-key", Unknown, ""},
		{"Bearer good-key extra", Unknown, ""},
		{"Bearer good\x00key", Unknown, ""},
		{"Bearer gööd", Unknown, ""},
	}
	for _, tc := range tests {
		k, got := r.Lookup(tc.auth)
		if got != tc.want || k.Account != tc.account {
			t.Errorf("Lookup(%q) = %v %q, want %v %q", tc.auth, got, k.Account, tc.want, tc.account)
		}
	}
}

func TestHashIsHexSHA256(t *testing.T) {
	// echo -n demo | sha256sum
	if got, want := Hash("demo"), "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"; got != want {
		t.Errorf("Hash(demo) = %s, want %s", got, want)
	}
}
