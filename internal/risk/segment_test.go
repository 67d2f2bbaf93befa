package risk

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
)

func TestSegments(t *testing.T) {
	many := make([]string, MaxSegments+MaxSegments/2)
	for i := range many {
		many[i] = "paragraph number " + strings.Repeat("x", i+1) + " of the notice"
	}
	tests := []struct {
		name, msg string
		want      []string
	}{
		{"one line", "Your order #4412 has shipped and arrives on Tuesday.", nil},
		{"empty", "", nil},
		{"blank lines only", "\n\n \n", nil},
		{"two paragraphs", "Your order #4412 has shipped today.\n\nP.S. Whitening is 40% off this month!",
			[]string{"Your order #4412 has shipped today.", "P.S. Whitening is 40% off this month!"}},
		{"one paragraph of lines: the last line", "Dear parent,\nThe bus leaves at 7:10 tomorrow.\nSummer camp is 30% off this week",
			[]string{"Summer camp is 30% off this week"}},
		{"last paragraph of lines: it and its last line",
			"Your bill is ready to view.\n\nPlease pay by the 20th of May.\nSwitch to the green plan for a free month",
			[]string{"Your bill is ready to view.", "Please pay by the 20th of May.\nSwitch to the green plan for a free month", "Switch to the green plan for a free month"}},
		{"short parts are not read alone", "Dear parents,\n\nThe trip to the museum is confirmed.\n\nThanks,\nMs. Harper",
			[]string{"The trip to the museum is confirmed."}},
		{"CRLF and spaces on blank lines", "Your parcel 7712 is at the depot.\r\n \r\nNew customers get 20% off today\r\n",
			[]string{"Your parcel 7712 is at the depot.", "New customers get 20% off today"}},
		{"Arabic", "تم شحن طلبك رقم 5521 وسيصل غدا\n\nملاحظة: خصم ٣٠٪ على جميع الخدمات هذا الأسبوع",
			[]string{"تم شحن طلبك رقم 5521 وسيصل غدا", "ملاحظة: خصم ٣٠٪ على جميع الخدمات هذا الأسبوع"}},
		{"lone CR, U+2028 and U+0085 end lines", "Your parcel 7712 is at the depot.\rCollect it before Friday at noon.\u2028Buy two rugs, get the third one free",
			[]string{"Buy two rugs, get the third one free"}},
		{"U+2029 ends a paragraph", "Your parcel 7712 is at the depot.\u2029Buy two rugs, get the third one free",
			[]string{"Your parcel 7712 is at the depot.", "Buy two rugs, get the third one free"}},
		{"blank lines of VT, FF and NEL", "Your parcel 7712 is at the depot.\v\f\u0085Buy two rugs, get the third one free",
			[]string{"Your parcel 7712 is at the depot.", "Buy two rugs, get the third one free"}},
		{"CRLF is one break", "Your parcel 7712 is at the depot.\r\nBuy two rugs, get the third one free",
			[]string{"Buy two rugs, get the third one free"}},
		{"runs keep the short paragraphs between their parts and leave room for the last line",
			strings.Join(many[:MaxSegments], "\n\nok\n\n") + "\nBuy two rugs, get the third one free", slices.Concat(
				[]string{many[0] + "\n\nok\n\n" + many[1]}, many[2:MaxSegments-1],
				[]string{many[MaxSegments-1] + "\nBuy two rugs, get the third one free", "Buy two rugs, get the third one free"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Collect(Segments(tt.msg))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Segments(%q) = %q, want %q", tt.msg, got, tt.want)
			}
		})
	}
	// More paragraphs than MaxSegments: MaxSegments parts, each of one or
	// two consecutive paragraphs, every paragraph in one part, in order.
	msg := strings.Join(many, "\n\n")
	got := slices.Collect(Segments(msg))
	var read []string
	for _, seg := range got {
		paras := strings.Split(seg, "\n\n")
		if len(paras) > 2 {
			t.Errorf("Segments(%d paragraphs) has the part %q of %d paragraphs, want at most 2", len(many), seg, len(paras))
		}
		read = append(read, paras...)
	}
	if len(got) != MaxSegments || !slices.Equal(read, many) {
		t.Errorf("Segments(%d paragraphs) = %q, want %d parts holding every paragraph once, in order", len(many), got, MaxSegments)
	}
}

// An ad in the P.S. of a real notice: the whole message reads as
// transactional to the model, the P.S. alone as promotional, and
// ModelSegmentLead is the strongest part's lead over transactional. A
// message of one line, or whose parts all read as transactional, has
// none.
func TestSegmentLead(t *testing.T) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Model: m})
	tx, promo := m.Class("transactional"), m.Class("promotional")
	lead := func(text string) float64 {
		var buf [model.MaxClasses]float64
		p := m.Predict(text, buf[:0])
		best := 0.0
		for c := range p {
			if c != tx {
				best = max(best, p[c]-p[tx])
			}
		}
		return best
	}
	tucked := []string{
		"Your electricity bill for October is AED 412.50, account 2231-8812. Please pay by 20 November through the app or at any branch to avoid a late fee.\nSwitch to our green plan and get your first month free!",
		"Hola Lucía, tu cita con la Dra. Pérez está confirmada para el jueves 12 a las 17:30 en la clínica de Chamberí, consulta 3, segunda planta. Trae tu tarjeta sanitaria y el informe de la última revisión. Si no puedes venir, avísanos con 24 horas de antelación.\n\nP.D. Este mes el blanqueamiento dental tiene un 30% de descuento, ¡pide tu cita!",
	}
	// The same ads behind the other line breaks a client renders, and an
	// ad in the first of twelve paragraphs (the last eight were all that
	// was read alone once).
	notice := "Your parcel 7712 is at the depot and will be delivered on Sunday morning."
	tucked = append(tucked,
		strings.Replace(tucked[0], "\n", "\u2028", 1),
		strings.Replace(tucked[0], "\n", "\r", 1),
		strings.Replace(tucked[1], "\n\n", "\u2029", 1),
		"Este mes el blanqueamiento dental tiene un 30% de descuento, ¡pide tu cita hoy mismo!\n\n"+strings.Repeat(notice+"\n\n", 11))
	// A retrained model may come to read one of them as promotional
	// whole (the Spanish P.S., by the models trained on rounds 73 to 84): the
	// lead must hold for it too, and at least one must still be a
	// tucked-in ad, read as transactional whole, or the test no longer
	// exercises the parts.
	hidden := 0
	for _, msg := range tucked {
		var buf [model.MaxClasses]float64
		if p := m.Predict(msg, buf[:0]); p[promo] < p[tx] {
			hidden++
		}
		if got := s.Scan(msg).ModelSegmentLead; got < 50 {
			t.Errorf("Scan(%q).ModelSegmentLead = %d, want at least 50", msg, got)
		}
	}
	if hidden == 0 {
		t.Fatal("the model reads every ad here as promotional whole: none is tucked in any more; add one it misses whole")
	}
	clean := []string{
		"Your order #2041 has been shipped and will arrive on Tuesday.",
		"Dear tenant,\n\nThe water supply in building B will be off on Sunday from 9:00 to 13:00 for pump maintenance.\n\nWe apologise for the inconvenience. For questions, call the management office.",
	}
	for _, msg := range clean {
		if got := s.Scan(msg).ModelSegmentLead; got != 0 {
			t.Errorf("Scan(%q).ModelSegmentLead = %d, want 0", msg, got)
		}
	}
	// The signal is the strongest segment's lead, rounded to ModelStep.
	for _, msg := range append(append(tucked, clean...), multilingual...) {
		want := 0.0
		for seg := range Segments(msg) {
			want = max(want, lead(seg))
		}
		if got, w := s.Scan(msg).ModelSegmentLead, int(math.Round(want*100/ModelStep))*ModelStep; got != w {
			t.Errorf("Scan(%q).ModelSegmentLead = %d, want %d", msg, got, w)
		}
	}
	if New(Options{}).Scan(tucked[0]).ModelSegmentLead != 0 {
		t.Error("a scanner without a model has a segment lead")
	}
}

// BenchmarkScanWithModelParagraphs is Scan with the content model over a
// notice of five paragraphs, every one read alone too.
func BenchmarkScanWithModelParagraphs(b *testing.B) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Model: m})
	msg := "Dear parents,\n\nThe Grade 5 trip to the science museum is confirmed for Tuesday 3 December.\n\n" +
		"Buses leave school at 8:15 and return by 13:30. Students must wear their PE uniform.\n\n" +
		"The signed consent form is due on Sunday. Students without one stay at school.\n\n" +
		"Thank you,\nMs. Harper, Grade 5 coordinator"
	b.ReportAllocs()
	for b.Loop() {
		s.Scan(msg)
	}
}

// BenchmarkScanWithModelLong is a 4,000-character message of 40
// paragraphs: MaxSegments bounds what is read alone.
func BenchmarkScanWithModelLong(b *testing.B) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Model: m})
	msg := strings.Repeat("Your parcel 7712 is at the depot and will be delivered on Sunday morning.\n\n", 60)[:4000]
	b.ReportAllocs()
	for b.Loop() {
		s.Scan(msg)
	}
}

// An ad spelt with lookalikes (Cyrillic or Greek letters in Latin words,
// a combining mark on every letter, a word of Cyrillic lookalikes only)
// scores as the ad spelt plainly: the same word signals and the same
// model signals.
func TestLookalikeSpellingsScoreAsPlain(t *testing.T) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Model: m})
	plain := "Get 50% off all sneakers this weekend only, shop now and save big"
	marked := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			b.WriteRune(r)
			if r >= 'a' && r <= 'z' {
				b.WriteRune('\u0301')
			}
		}
		return b.String()
	}
	spellings := map[string]string{
		"Cyrillic letters": strings.NewReplacer("a", "а", "e", "е", "o", "о", "p", "р", "c", "с").Replace(plain),
		"Greek letters":    strings.NewReplacer("o", "ο", "e", "ε").Replace(plain),
		"combining marks":  marked(plain),
		"lookalike words":  strings.Replace(plain, "save", "ѕаvе", 1),
	}
	want := s.Scan(plain)
	if want.ModelPromotional < 90 || want.PromoTerms == 0 {
		t.Fatalf("Scan(%q) = %+v: not an ad to the scanner", plain, want)
	}
	for name, msg := range spellings {
		t.Run(name, func(t *testing.T) {
			got := s.Scan(msg)
			got.Length, got.CapsRatioPct = want.Length, want.CapsRatioPct // runes differ
			if got != want {
				t.Errorf("Scan(%q) = %+v, want %+v (as %q)", msg, got, want, plain)
			}
		})
	}
}
