package policy

import (
	"context"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/risk"
)

// TestWordsInContextDecide: legitimate messages that the native word
// signals alone used to block or slow (issue 9: a staff raffle's result, a
// staff vote, a coupon already applied) are allowed at full speed by the
// embedded Rego, with and without the content model, while the disguised
// campaigns next to them stay blocked.
func TestWordsInContextDecide(t *testing.T) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	e := engine(t, Options{CacheEntries: -1})
	const allowed, slowed, blocked = "allowed", "slowed", "policy_violation"
	tests := []struct {
		msg  string
		want string
	}{
		{"Dear staff, the staff council vote closes Thursday at 5 PM. Cast your vote on the intranet.", allowed},
		{"Reminder: the employee council election is on Sunday in the canteen, 8 AM to 2 PM. Bring your staff ID.", allowed},
		{"Élections du CSE : le vote électronique est ouvert jusqu'au vendredi 16 h.", allowed},
		{"Bhaiyo, company trip ka vote (Goa ya Manali) kal band, group me vote karo.", allowed},
		{"Sorteo interno de la cena de Navidad: los números ganadores están en el tablón de RR. HH. Recoge tu premio antes del 20/12.", allowed},
		{"نتيجة السحب على جوائز حضور المؤتمر: فازت التذكرة رقم 0412، يرجى مراجعة منصة التسجيل.", allowed},
		{"Coupon WELCOME10 apply aachu: subtotal AED 300, discount AED 30, total AED 270. Nandri!", allowed},
		{"coupon NEPAL5 lagyo, 5 AED ghatyo, total 67 AED", allowed},
		{"Dear candidate, thank you for attending. We're pleased to extend you an offer for the Nurse position; the offer letter is attached.", allowed},
		{"Frete grátis aplicado ao pedido #123. Total a pagar: 89 AED.", allowed},

		{"WIN BIG!!! 50% OFF everything today only, use code SAVE50 at bit.ly/deal", blocked},
		{"Hondureños en el exterior: el 30 de noviembre voten por nuestro candidato.", blocked},
		{"Congratulations you have won a prize! Claim your prize now at bit.ly/x", blocked},
		{"Coupon applied to order 5512. Mega sale this weekend only, huge savings on every brand, shop now at bit.ly/sale", blocked},
	}
	for _, sc := range []struct {
		name string
		s    *risk.Scanner
	}{{"native", risk.New(risk.Options{})}, {"with model", risk.New(risk.Options{Model: m})}} {
		for _, tc := range tests {
			t.Run(sc.name, func(t *testing.T) {
				d, err := e.Eval(context.Background(), Input{Purpose: "transactional", PurposePresent: true, Signals: sc.s.Scan(tc.msg)})
				if err != nil {
					t.Fatal(err)
				}
				got := allowed
				switch {
				case !d.Allow:
					got = d.Error
				case d.Throttle:
					got = slowed
				}
				if got != tc.want {
					t.Errorf("Decide(%q) = %s (risk score %d), want %s", tc.msg, got, d.RiskScore, tc.want)
				}
			})
		}
	}
}
