package risk

import (
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
)

var multilingual = []string{
	"Your order #4412 has shipped! Reply YES for 20% off your next order",
	"Congratulations, you won a $1000 gift card, claim at bit.ly/x", "Vote for Maria on Tuesday",
	"تم شحن طلبك رقم 5521 وسيصل غدا", "मुझे और संदेश मत भेजो", "Siparişiniz 8812 kargoya verildi.",
	"Вы выиграли приз! Перейдите по ссылке", "e\u0301te\u0301 ça suffit", "İPTAL 🙏🙏", "", "\u200f\u200e",
}

// The model's signals are percents in ModelStep steps that add up to about
// 100, the same from many goroutines as from one.
func TestModelSignalsConcurrent(t *testing.T) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Model: m})
	want := make([]Signals, len(multilingual))
	for i, msg := range multilingual {
		want[i] = s.Scan(msg)
		sig := want[i]
		sum := sig.ModelTransactional + sig.ModelPromotional + sig.ModelColdOutreach + sig.ModelPolitical + sig.ModelScam
		for _, p := range []int{sig.ModelTransactional, sig.ModelPromotional, sig.ModelColdOutreach, sig.ModelPolitical, sig.ModelScam} {
			if p%ModelStep != 0 || p < 0 || p > 100 {
				t.Errorf("Scan(%q) model signal %d: want a multiple of %d in 0..100", msg, p, ModelStep)
			}
		}
		if sum < 90 || sum > 110 {
			t.Errorf("Scan(%q) model signals add up to %d, want about 100", msg, sum)
		}
	}
	if New(Options{}).Scan(multilingual[0]).ModelPromotional != 0 {
		t.Error("a scanner without a model has model signals")
	}
	// Concurrently, on every script: the scanner and the model keep no
	// state between calls.
	var wg sync.WaitGroup
	errs := make(chan string, len(multilingual))
	for g := range 8 {
		wg.Go(func() {
			for r := range 50 {
				i := (g + r) % len(multilingual)
				if got := s.Scan(multilingual[i]); got != want[i] {
					select {
					case errs <- multilingual[i]:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("Scan(%q) from many goroutines differs from one goroutine", msg)
	}
}

func BenchmarkScanWithModel(b *testing.B) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Model: m})
	b.ReportAllocs()
	for b.Loop() {
		s.Scan("Your order #2041 has been shipped and will arrive on Tuesday.")
	}
}
