package risk

import "testing"

// words is the part of Signals the vocabulary decides.
type words struct{ Promo, Discount, Prize, Political, Transactional int }

func wordsOf(s Signals) words {
	return words{s.PromoTerms, s.DiscountCodes, s.PrizeClaims, s.Political, s.Transactional}
}

// TestScanContext holds the rules that read a term in its context (issue 9:
// legitimate messages blocked by the native word signals), each with
// messages where the term still counts, in several languages.
func TestScanContext(t *testing.T) {
	s := New(Options{})
	tests := []struct {
		name string
		msg  string
		want words
	}{
		// A term in two languages' lists counts once, not once per list.
		{"one term once es", "Cambio de batería gratis por garantía realizado.", words{Promo: 1}},
		{"one term once pt", "Seu teste grátis termina amanhã.", words{Promo: 1}},
		{"one term once id", "Acara gratis, Minggu 09.00 di aula.", words{Promo: 1}},
		{"one term once en", "Reminder: the employee council election is on Sunday.", words{}},
		{"one term once, twice written", "gratis gratis", words{Promo: 2}},
		{"our candidate es", "Hondureños en el exterior: el 30 de noviembre voten por nuestro candidato.", words{Political: 3}},

		// An internal audience: prize and political terms do not count.
		{"staff raffle en", "Your prize from the staff raffle (a AED 200 voucher) can be collected from HR.", words{}},
		{"staff raffle es", "Felicidades, has ganado el sorteo de Navidad de la empresa: una tablet. Recógela en RR. HH.", words{}},
		{"staff raffle fr", "Bravo, vous avez gagné la tombola de Noël de l'entreprise : une tablette !", words{}},
		{"staff contest ar", "مبروك! فزت بالمركز الثاني في مسابقة الموظفين لأفكار التحسين", words{}},
		{"staff vote en", "Dear staff, the staff council vote closes Thursday at 5 PM. Cast your vote on the intranet.", words{}},
		{"staff vote hi-latn", "Staff vote: company ki Holi party Thursday ko karein ya Saturday ko?", words{}},
		{"company trip vote ta", "Nanbargale, company trip vote (Ooty ah Kodai ah) naalaiku mudiyuthu, group la vote pannunga.", words{}},
		{"works council fr", "Vote du comité d'entreprise : choisissez la destination de la sortie annuelle.", words{}},
		{"election staff ar", "لجنة الانتخابات: على موظفي مراكز الاقتراع استلام بطاقاتهم من المقر يوم الأربعاء.", words{}},
		{"AGM bn", "Flat malik somitir AGM robibar 10 tay community hall e. Budget niye vote hobe, proxy form shongjukto.", words{}},
		{"no audience: prize counts", "Congratulations you won a prize! Claim your prize now", words{Prize: 5}},
		{"no audience: vote counts", "Vote for Ahmed on Tuesday", words{Political: 2}},
		{"internal audience: promo still counts", "Staff: 50% discount sale today only, buy now", words{Promo: 3}},

		// A settled amount: promo terms and codes near "applied" do not count.
		{"coupon applied en", "Coupon WELCOME10 applied to order #9001. Total after discount: SAR 180.", words{Transactional: 1}},
		{"coupon applied ta", "Coupon WELCOME10 apply aachu: subtotal AED 300, discount AED 30, total AED 270. Nandri!", words{}},
		{"coupon applied ml", "Coupon ONAM15 bill no. 7712 il apply aayi: discount ₹300, adacha thuka ₹1,700.", words{}},
		{"free shipping applied pt", "Frete grátis aplicado ao pedido #123. Total a pagar: 89 AED.", words{Transactional: 1}},
		{"free shipping applied es", "Envío gratis aplicado a tu pedido #123. Total a pagar: 89 AED.", words{Transactional: 1}},
		{"voucher redeemed de", "Gutschein WILLKOMMEN10 eingelöst: Zwischensumme 89,00 €, Rabatt 8,90 €, bezahlt 80,10 €.", words{}},
		{"staff discount ar", "تم تطبيق خصم كبار السن 25% حسب النظام على فاتورة العلاج.", words{}},
		{"free delivery hi-latn", "Aapke order 5521 par free delivery lag gayi hai. Total ₹640.", words{Transactional: 1}},
		{"free delivery bn", "Order 5521 e free delivery apply hoye geche. Mot 640 taka.", words{Transactional: 1}},
		{"free delivery id", "Gratis ongkir sudah diterapkan pada pesanan #123. Total Rp 95.000.", words{}},
		{"cashback credited en", "Your cashback of SAR 15 from the October promotion has been credited to your wallet.", words{}},
		{"code not applied", "Use code SAVE50 for 50% off everything today only", words{Promo: 2, Discount: 2}},
		// The settled scope is the anchor's sentence and a next one
		// without a call to action; an abbreviation ends no sentence.
		{"totals line after applied", "Coupon WELCOME10 applied to order #9001. Total after discount: SAR 180.", words{Transactional: 1}},
		{"upsell after applied en", "Coupon applied to order 5512. Mega sale this weekend only, shop now", words{Promo: 3, Transactional: 1}},
		{"upsell after applied pt", "Cupom aplicado ao pedido 7712. Aproveite: desconto de 30% só hoje, compre agora!", words{Promo: 2, Transactional: 1}},
		{"upsell two sentences on", "Coupon applied. Thanks. Huge savings on every brand", words{Promo: 2}},
		{"abbreviation", "Coupon ONAM15 bill no. 7712 il apply aayi: discount ₹300.", words{}},
		{"offer far from applied", "Coupon applied to order 5512 and your parcel ships tomorrow morning from our warehouse in Jebel Ali. Mega sale this weekend only, huge savings on every brand",
			words{Promo: 5, Transactional: 1}},

		// Neutral phrases.
		{"offer letter", "Dear candidate, your offer letter for the Nurse position is attached.", words{}},
		{"free of charge", "Your booking was cancelled free of charge.", words{}},
		{"offer still counts", "Special offer: free delivery on every order", words{Promo: 3}},

		// Negation right before a promo or prize term.
		{"no draw es", "Gracias por contestar la encuesta. No hay sorteo ni regalo.", words{}},
		{"no draw de", "Danke für Ihre Teilnahme an der Umfrage. Es gibt kein Gewinnspiel und keine Prämie.", words{}},
		{"no draw pt", "Obrigado por responder a pesquisa. Não tem sorteio nem brinde.", words{}},
		{"no draw fr", "Il n'y a ni tirage au sort ni cadeau.", words{}},
		{"pt 'no' is 'in the'", "Participe no sorteio de um iPhone", words{Prize: 1}},
		{"negation too far", "Not only that: you can win a prize", words{Prize: 2}},

		// A gift card is a product, not a prize claim.
		{"gift card balance", "Your gift card balance is AED 140.50. It's valid until 30 June 2027.", words{}},

		// Arabic definite forms of the transactional anchors.
		{"definite ticket ar", "فازت التذكرة رقم 0412، يرجى مراجعة منصة التسجيل.", words{Transactional: 1}},
		// Entries with an apostrophe match the normalised text, which
		// joins the elided letter: "aujourd'hui" is "aujourdhui".
		{"apostrophe fr", "Soldes : -50 % aujourd'hui seulement", words{Promo: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := wordsOf(s.Scan(tc.msg)); got != tc.want {
				t.Errorf("Scan(%q) = %+v, want %+v", tc.msg, got, tc.want)
			}
		})
	}
}

// The context lists are data too: a platform team's own internal audience,
// settled wording, neutral phrase or negation takes effect through Merge.
func TestContextVocabularyExtends(t *testing.T) {
	tests := []struct {
		name  string
		extra Vocabulary
		msg   string
		want  words
	}{
		{"internal", Vocabulary{InternalAnchor: []string{"Crew Portal"}}, "Crew portal: raffle prize for Ahmed", words{}},
		{"settled", Vocabulary{SettledAnchor: []string{"got knocked off"}}, "10 AED discount got knocked off your bill", words{}},
		{"neutral", Vocabulary{Neutral: []string{"deal desk"}}, "The deal desk signed your contract", words{}},
		{"negation", Vocabulary{Negation: []string{"nunca"}}, "nunca promoción", words{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := DefaultVocabulary().Merge(tc.extra)
			if got := wordsOf(New(Options{Vocabulary: &v}).Scan(tc.msg)); got != tc.want {
				t.Errorf("Scan(%q) = %+v, want %+v", tc.msg, got, tc.want)
			}
			if got := wordsOf(New(Options{}).Scan(tc.msg)); got == tc.want {
				t.Errorf("Scan(%q) without the extra entry = %+v already", tc.msg, got)
			}
		})
	}
}

// FuzzScan: any text, settled anchors and sentence marks included, scans
// without panicking, and the same twice.
func FuzzScan(f *testing.F) {
	for _, m := range append(marked, "Coupon applied. Total after discount: SAR 180.", "applied.\n.!؟ ", "تم تطبيق الخصم. شكرا", "applied . . no. 5 Sale!") {
		f.Add(m)
	}
	s := New(Options{})
	f.Fuzz(func(t *testing.T, msg string) {
		if a, b := s.Scan(msg), s.Scan(msg); a != b {
			t.Errorf("Scan(%q) = %+v, then %+v", msg, a, b)
		}
	})
}

// BenchmarkScanSettled is a receipt with a settled amount: the one path
// that folds the message a second time, sentence by sentence.
func BenchmarkScanSettled(b *testing.B) {
	s := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		s.Scan("Coupon WELCOME10 applied to order #9001. Total after discount: SAR 180. Thank you!")
	}
}
