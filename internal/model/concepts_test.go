package model

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/optout"
)

// conceptSpec is the inbound spec with the concept classes of
// concepts.txt, those near a negator and the pairs within three words,
// without the negated character n-grams (format 5).
func conceptSpec() Spec {
	s := TaskSpec(Inbound)
	s.Concepts, s.ConceptNeg, s.ConceptPairs = ConceptLexicon(), true, 3
	s.NegChars = false
	return s
}

// conceptFeatures lists the concept features of text under s, each as
// kind:name ("concept:EMAIL", "concept_pair:EMAIL>HERE"), sorted.
func conceptFeatures(t *testing.T, s Spec, text string) []string {
	t.Helper()
	mk := mustMarks(s)
	p := s.prepare(nil, text)
	var spans []span
	feats, _ := s.extractNeg(nil, p, mk, &spans)
	if len(feats) != len(spans) {
		t.Fatalf("%d features, %d spans", len(feats), len(spans))
	}
	var out []string
	for _, sp := range spans {
		if sp.kind >= kindConcept {
			out = append(out, kindNames[sp.kind]+":"+mk.conceptName(sp))
		}
	}
	slices.Sort(out)
	return out
}

// Every line of concepts.txt is a class, a language and entries; every
// entry normalises to one or two words (none is dropped); every class has
// entries in each of the corpus' 17 languages but where a language has no
// such word of its own; the lexicon builds.
func TestConceptLexicon(t *testing.T) {
	langs := map[string]map[string]bool{}
	var names []string
	for line := range strings.Lines(conceptsFile) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 3 || f[0] == "" || f[1] == "" || len(strings.Fields(f[2])) == 0 {
			t.Errorf("concepts.txt line %q: want CLASS<TAB>lang<TAB>entries", line)
			continue
		}
		if langs[f[0]] == nil {
			langs[f[0]] = map[string]bool{}
			names = append(names, f[0])
		}
		langs[f[0]][strings.TrimSuffix(f[1], "-latn")] = true
		for _, e := range strings.Fields(f[2]) {
			if n := len(strings.Fields(unleet(optout.Lookalikes(optout.Normalize(e))))); n < 1 || n > 2 {
				t.Errorf("concepts.txt %s %s: entry %q normalises to %d words", f[0], f[1], e, n)
			}
		}
	}
	if len(names) < 10 || len(names) > maxConcepts {
		t.Errorf("concepts.txt has %d classes, want 10 to %d", len(names), maxConcepts)
	}
	// Languages with no word of a class: German, French, Spanish and
	// Portuguese have none for e-mail but the English loan; Tagalog,
	// Indonesian and Turkish write "WhatsApp" in Latin as English does.
	loans := map[string]bool{"EMAIL tl": true, "HERE id": true, "HERE tl": true, "HERE tr": true}
	for _, c := range names {
		for _, l := range []string{"ar", "en", "hi", "ur", "bn", "ne", "fa", "ml", "ta", "tl", "id", "tr", "fr", "es", "pt", "de", "ru"} {
			if !langs[c][l] && !loans[c+" "+l] {
				t.Errorf("concept class %s has no entry in %s", c, l)
			}
		}
	}
	lx := ConceptLexicon()
	s := conceptSpec()
	mk, err := s.marks()
	if err != nil {
		t.Fatalf("marks of ConceptLexicon(): %v", err)
	}
	if mk.most > conceptRoom {
		t.Errorf("the lexicon's concept features per text are bounded by %d, the scratch has room for %d", mk.most, conceptRoom)
	}
	if !slices.Equal(mk.names, names) {
		t.Errorf("lexicon classes = %v, want %v", mk.names, names)
	}
	for line := range strings.Lines(lx) {
		e := strings.Split(strings.TrimSuffix(line, "\n"), "\t")[1:]
		if !slices.IsSorted(e) || len(slices.Compact(slices.Clone(e))) != len(e) {
			t.Errorf("ConceptLexicon() class %s: entries not sorted or repeated", line[:strings.IndexByte(line, '\t')])
		}
	}
}

// A malformed lexicon is refused by marks, so by Train and Load.
func TestConceptLexiconMalformed(t *testing.T) {
	for _, lx := range []string{
		"MSG\n",                     // no entries
		"MSG\tmessage\nMSG\ttext\n", // a class twice
		"MSG\tthree word entry\n",   // too long
		"MSG\tdouble  space\n",      // not normalised
		"A>B\tx\n",                  // '>' names pairs
		"\tmessage\n",               // no name
	} {
		s := conceptSpec()
		s.Concepts = lx
		if _, err := s.marks(); err == nil {
			t.Errorf("marks(%q) succeeded, want an error", lx)
		}
		if _, _, err := Train(Inbound, fixture(t, Inbound), s, Params{Epochs: 1}); err == nil {
			t.Errorf("Train with concepts %q succeeded, want an error", lx)
		}
	}
	var b strings.Builder
	for i := range maxConcepts + 1 {
		b.WriteString(string(rune('A'+i%26)) + strings.Repeat("x", i/26) + "\tw\n")
	}
	s := conceptSpec()
	s.Concepts = b.String()
	if _, err := s.marks(); err == nil {
		t.Errorf("marks of %d classes succeeded, want an error", maxConcepts+1)
	}
}

// The concept features of replies in many languages: the classes, those
// near a negator and the pairs of consecutive occurrences within three
// words, the same names in every language and script.
func TestConceptFeatures(t *testing.T) {
	s := conceptSpec()
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"send the reminders to my e-mail, not here", []string{"concept:EMAIL", "concept:HERE", "concept:MSG", "concept:SENDV", "concept_neg:EMAIL", "concept_neg:HERE", "concept_pair:EMAIL>HERE", "concept_pair:SENDV>MSG"}},
		{"Напоминания шлите на почту, сюда не надо", []string{"concept:EMAIL", "concept:HERE", "concept:MSG", "concept:SENDV", "concept_neg:EMAIL", "concept_neg:HERE", "concept_pair:EMAIL>HERE", "concept_pair:MSG>SENDV", "concept_pair:SENDV>EMAIL"}},
		{"ابي التذكيرات على الايميل مو الواتساب", []string{"concept:EMAIL", "concept:HERE", "concept:MSG", "concept_neg:EMAIL", "concept_neg:HERE", "concept_pair:EMAIL>HERE", "concept_pair:MSG>EMAIL"}},
		{"sirf appointment ka bata diya karein", []string{"concept:ONLY", "concept:TXN", "concept_pair:ONLY>TXN"}},
		{"केवल बिल भेजें", []string{"concept:ONLY", "concept:SENDV", "concept:TXN", "concept_pair:ONLY>TXN", "concept_pair:TXN>SENDV"}},
		{"pause until after Easter", []string{"concept:ENDV", "concept:UNTIL", "concept_pair:ENDV>UNTIL"}},
		{"Bitte nicht austragen", []string{"concept:ENDV", "concept_neg:ENDV"}},
		{"kim bu? numaram nereden", []string{"concept:NUMBER", "concept:WHO", "concept_pair:WHO>NUMBER"}},
		{"terima kasih 🙏", []string{"concept:THANKS"}}, // a two-word entry
		{"E-MAIL bitte", []string{"concept:EMAIL"}},    // one occurrence of "e mail", not two
		{"mensaje de texto", []string{"concept:MSG", "concept:MSG", "concept_pair:MSG>MSG"}},
		{"hola, ¿qué tal?", nil},
		{"", nil},
	} {
		t.Run(tc.text, func(t *testing.T) {
			if got := conceptFeatures(t, s, tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("concept features of %q = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
	// Without ConceptNeg and ConceptPairs, only the classes.
	s.ConceptNeg, s.ConceptPairs = false, 0
	if got, want := conceptFeatures(t, s, "send to my email, not here"), []string{"concept:EMAIL", "concept:HERE", "concept:SENDV"}; !slices.Equal(got, want) {
		t.Errorf("classes alone: %v, want %v", got, want)
	}
	// A word in two classes is both, and pairs with each.
	s = conceptSpec()
	s.Concepts = "A\tstop\nB\tstop\tnow\n"
	if got, want := conceptFeatures(t, s, "stop now"), []string{"concept:A", "concept:B", "concept:B", "concept_pair:A>B", "concept_pair:B>B"}; !slices.Equal(got, want) {
		t.Errorf("a word in two classes: %v, want %v", got, want)
	}
	// Pairs further apart than ConceptPairs words are not paired.
	if got := conceptFeatures(t, s, "stop one two three now"); slices.ContainsFunc(got, func(f string) bool { return strings.HasPrefix(f, "concept_pair") }) {
		t.Errorf("concepts four words apart paired: %v", got)
	}
	// A spec without concepts has no concept features.
	if got := conceptFeatures(t, TaskSpec(Outbound), "send to my email, not here"); got != nil {
		t.Errorf("a spec without concepts: %v", got)
	}
}

// A model with concepts is format 5, trains to the same bytes twice and
// reads back with its lexicon; labelled format 4 it is refused, as are
// concept_neg without concepts or negators, pairs without concepts or
// beyond 8 words, and a malformed lexicon. A format-4 file still loads.
func TestConceptFile(t *testing.T) {
	a, m := trainFileTwice(t, conceptSpec(), 3, 5)
	if m.Spec != conceptSpec() || len(m.mk.con) == 0 || len(m.mk.names) != strings.Count(ConceptLexicon(), "\n") {
		t.Errorf("the loaded model's concepts are not the lexicon's")
	}
	spec := func(f func(sp map[string]any)) func(h map[string]any) {
		return func(h map[string]any) { f(h["spec"].(map[string]any)) }
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"format 4 with concepts", withVersion(t, a, 4, nil)},
		{"concept_neg without concepts", withVersion(t, a, 5, spec(func(sp map[string]any) { delete(sp, "concepts"); delete(sp, "concept_pairs") }))},
		{"concept_neg without negators", withVersion(t, a, 5, spec(func(sp map[string]any) {
			delete(sp, "negators")
			delete(sp, "neg_window")
			delete(sp, "neg_bigrams")
		}))},
		{"concept_pairs without concepts", withVersion(t, a, 5, spec(func(sp map[string]any) { delete(sp, "concepts"); delete(sp, "concept_neg") }))},
		{"concept_pairs 9", withVersion(t, a, 5, spec(func(sp map[string]any) { sp["concept_pairs"] = 9 }))},
		{"a malformed lexicon", withVersion(t, a, 5, spec(func(sp map[string]any) { sp["concepts"] = "MSG\n" }))},
		{"an unknown concept field", withVersion(t, a, 5, spec(func(sp map[string]any) { sp["concept_triples"] = true }))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.b); !errors.Is(err, ErrFormat) {
				t.Errorf("Load(%s) = %v, want ErrFormat", tc.name, err)
			}
		})
	}
	if _, err := Load(withVersion(t, a, 5, nil)); err != nil {
		t.Errorf("Load(re-sealed format 5) = %v; the test's rewriting is wrong", err)
	}
	s4 := TaskSpec(Inbound)
	s4.Concepts, s4.ConceptNeg, s4.ConceptPairs, s4.NegChars = "", false, 0, false
	old, _, err := Train(Inbound, fixture(t, Inbound), s4, Params{Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(old[len(magic):]); v != 4 {
		t.Errorf("Train without concepts wrote format %d, want 4", v)
	}
	if _, err := Load(old); err != nil {
		t.Errorf("Load(format 4) = %v", err)
	}
}

// Explain names the concept features by their classes.
func TestConceptExplain(t *testing.T) {
	// The fixture and replies that hold these concepts, so they have
	// weights (a feature no training example has is 0 in every class).
	ex := fixture(t, Inbound)
	for i, r := range []string{"send the reminders to my email, not here", "reminders by e-mail, not on whatsapp", "Напоминания шлите на почту, сюда не надо",
		"ابي التذكيرات على الايميل مو الواتساب", "send updates to my gmail not whatsapp", "mail me the alerts, not here please"} {
		for j := range 4 {
			ex = append(ex, Example{Label: "opt_out", Lang: "en", Text: r + strings.Repeat(" pls", i*4+j)})
		}
	}
	_, m, err := Train(Inbound, ex, conceptSpec(), Params{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	const text = "please send the reminders to my email, not whatsapp"
	seen := map[string]bool{}
	for c := range m.Classes {
		for _, x := range m.Explain(text, c, 1000) {
			if strings.HasPrefix(x.Kind, "concept") {
				seen[x.Kind+" "+x.Feature] = true
			}
		}
	}
	for _, f := range []string{"concept SENDV", "concept MSG", "concept EMAIL", "concept HERE", "concept_neg EMAIL", "concept_neg HERE", "concept_pair EMAIL>HERE", "concept_pair SENDV>MSG"} {
		if !seen[f] {
			t.Errorf("Explain(%q) over every class never showed %s (saw %v)", text, f, seen)
		}
	}
}

// Predict with concepts gives what the reference gives, bit for bit, on
// the corpus and odd text from many goroutines, and PredictNormalized
// agrees; a reply of many concept words (more than the occurrences kept)
// included.
func TestConceptPredictConcurrent(t *testing.T) {
	_, m, err := Train(Inbound, fixture(t, Inbound), conceptSpec(), Params{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	texts := append(slices.Clone(multilingual),
		"send the reminders to my email, not here", "ابي التذكيرات على الايميل مو الواتساب", "Напоминания шлите на почту, сюда не надо",
		"sirf appointment ka bata diya karein", "Thai maasam mudiyura varai message pause pannunga", "please don't stop the messages",
		"Bitte nicht austragen", "who gave you my number? who is this", "Farsi please, not English", "call no, messages yes",
		"केवल बिल भेजें 🙏", "শুধু বিল পাঠান", "فقط قبض بفرستید", "sadece faturaları gönderin", "e-mail e-mail", "E M A I L",
		strings.Repeat("stop messages email here only ", 20), strings.Repeat("не ", 20)+"сообщения")
	for _, e := range fixture(t, Inbound) {
		texts = append(texts, e.Text)
	}
	matchesReference(t, m, texts, 1)
	predictConcurrently(t, m, texts)
	matchesReference(t, m, texts, 4)
}

// matchesReference checks, from n goroutines at once, that Predict (the
// fast path) gives the reference's probabilities for every text, and
// PredictNormalized of the normalised text what Predict gives.
func matchesReference(t *testing.T, m *Model, texts []string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			for i := g; i < len(texts); i += n {
				if got, want := m.Predict(texts[i], nil), m.refPredict(texts[i], nil); !slices.Equal(got, want) {
					t.Errorf("Predict(%q) from %d goroutines = %v, reference %v", texts[i], n, got, want)
					return
				}
				if p, nz := m.Predict(texts[i], nil), m.PredictNormalized(optout.Normalize(texts[i]), nil); !slices.Equal(nz, p) {
					t.Errorf("PredictNormalized(Normalize(%q)) = %v, Predict = %v", texts[i], nz, p)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Predict with concepts allocates nothing of its own, on a reply of many
// concept words.
func TestConceptPredictAllocations(t *testing.T) {
	_, m, err := Train(Inbound, fixture(t, Inbound), conceptSpec(), Params{Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	noAllocsBeyondNormalize(t, m, "please don't stop the reminders, only send the bills to my e-mail, not here on WhatsApp, until next month, thanks")
}

// noAllocsBeyondNormalize fails the test when Predict of msg, with its
// scratch warm, allocates more often than optout.Normalize of it.
func noAllocsBeyondNormalize(t *testing.T, m *Model, msg string) {
	t.Helper()
	buf := make([]float64, 0, MaxClasses)
	sc := newScratch()
	m.predict(sc, msg, buf)
	norm := testing.AllocsPerRun(100, func() { optout.Normalize(msg) })
	if got := testing.AllocsPerRun(100, func() { m.predict(sc, msg, buf[:0]) }); got > norm {
		t.Errorf("Predict(%q) allocates %.0f times, Normalize %.0f: want nothing beyond the normaliser", msg, got, norm)
	}
}
