package model

import (
	"crypto/sha256"
	"slices"
	"sync"
	"testing"
)

// TestEmbeddedAfterRelease: release drops the pages of an embedded model
// file once it is decoded; the bytes read back from the executable are the
// same, so decoding again, from many goroutines at once, gives the same
// model, and a text scores the same on every copy.
func TestEmbeddedAfterRelease(t *testing.T) {
	for _, task := range []string{Inbound, Outbound} {
		b := inboundModel
		if task == Outbound {
			b = outboundModel
		}
		before := sha256.Sum256(b)
		first, err := Embedded(task) // decodes, then releases
		if err != nil {
			t.Fatal(err)
		}
		if after := sha256.Sum256(b); after != before {
			t.Fatalf("%s: the embedded file's bytes changed after release", task)
		}
		texts := []string{"STOP", "الرجاء عدم إرسال رسائل ترويجية", "मुझे मैसेज मत भेजो 🙏", "Your order #4412 has shipped", "café́ bitte nicht mehr schreiben"}
		want := make([][]float64, len(texts))
		for i, s := range texts {
			want[i] = first.Predict(s, nil)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				m, err := Embedded(task)
				if err != nil {
					t.Error(err)
					return
				}
				for i, s := range texts {
					if got := m.Predict(s, nil); !slices.Equal(got, want[i]) {
						t.Errorf("%s: Predict(%q) = %v after release, want %v", task, s, got, want[i])
					}
				}
			})
		}
		wg.Wait()
		if sha256.Sum256(b) != before {
			t.Fatalf("%s: the embedded file's bytes changed", task)
		}
	}
}
