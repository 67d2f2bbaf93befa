package phone

import (
	"fmt"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// slowE164 is the full parse, without the fast path.
func slowE164(s string) (string, bool) {
	num, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return phonenumbers.Format(num, phonenumbers.E164), true
}

// TestFastE164MatchesParse: wherever the fast path decides, the full parse
// gives the same number, for example numbers of every region and type and
// twenty neighbours of each; and it does decide for ordinary numbers
// (Saudi, US, UK, Indian, Turkish mobiles), or the import is slow again.
func TestFastE164MatchesParse(t *testing.T) {
	types := []phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE, phonenumbers.TOLL_FREE, phonenumbers.VOIP, phonenumbers.PREMIUM_RATE, phonenumbers.UAN}
	decided, checked := 0, 0
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range types {
			ex := phonenumbers.GetExampleNumberForType(region, typ)
			if ex == nil {
				continue
			}
			base := phonenumbers.Format(ex, phonenumbers.E164)
			for i := range 20 {
				s := base
				if len(s) > 3 {
					s = fmt.Sprintf("%s%02d", s[:len(s)-2], i)
				}
				got, ok := fastE164(s)
				checked++
				if !ok {
					continue
				}
				decided++
				if want, wok := slowE164(s); !wok || want != got {
					t.Errorf("fastE164(%q) = %q, want Parse's %q, %v", s, got, want, wok)
				}
			}
		}
	}
	t.Logf("fast path decided %d of %d", decided, checked)
	for _, s := range []string{"+966501234567", "+14155550100", "+447911123456", "+919876543210", "+905321234567"} {
		if got, ok := fastE164(s); !ok || got != s {
			t.Errorf("fastE164(%q) = %q, %v, want it decided as itself", s, got, ok)
		}
	}
	for _, s := range []string{"+3906698", "+390669812345", "+4901701234567", "+80012345678", "+966 50 123 4567", "+96650123456"} {
		if got, ok := fastE164(s); ok {
			t.Errorf("fastE164(%q) = %q, decided; want it left to Parse", s, got)
		}
	}
}

func BenchmarkE164Uncached(b *testing.B) {
	n, _ := New(Options{CacheSize: -1})
	for i := 0; b.Loop(); i++ {
		n.E164(fmt.Sprintf("+96650%07d", i%10_000_000))
	}
}
