package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestLenClass(t *testing.T) {
	for _, tc := range []struct {
		words int
		want  uint32
	}{
		{0, 0}, {1, 0}, {2, 1}, {3, 1}, {4, 2}, {7, 2}, {8, 3}, {15, 3}, {16, 4}, {17, 4}, {1000, 4},
	} {
		if got := lenClass(tc.words); got != tc.want {
			t.Errorf("lenClass(%d) = %d, want %d", tc.words, got, tc.want)
		}
	}
}

// features returns the buckets of text's features of one kind, by the
// text each came from.
func features(s Spec, text string) map[uint8]map[string]uint32 {
	p := s.prepare(nil, text)
	var spans []span
	feats, _ := s.extractNeg(nil, p, mustMarks(s), &spans)
	out := map[uint8]map[string]uint32{}
	for i, f := range feats {
		sp := spans[i]
		if out[sp.kind] == nil {
			out[sp.kind] = map[string]uint32{}
		}
		out[sp.kind][string(p[sp.start:sp.end])] = f
	}
	return out
}

// The inbound spec tells a bare "stop" from "stop" inside a long reply
// (the word crossed with the reply's length class); the plain word feature
// stays the same in both.
func TestLenWords(t *testing.T) {
	s := TaskSpec(Inbound)
	if !s.LenWords || TaskSpec(Outbound) != DefaultSpec() {
		t.Fatalf("TaskSpec(inbound) = %+v, TaskSpec(outbound) = %+v: want inbound with len_words, outbound the default", s, TaskSpec(Outbound))
	}
	bare := features(s, "STOP")
	long := features(s, "I told you twice to stop sending me these reminders every single morning at six, please")
	if bare[kindWord]["stop"] != long[kindWord]["stop"] {
		t.Errorf("word \"stop\": bucket %d alone, %d in a long reply; want the same", bare[kindWord]["stop"], long[kindWord]["stop"])
	}
	if _, ok := bare[kindLenWord]["stop"]; !ok || bare[kindLenWord]["stop"] == long[kindLenWord]["stop"] {
		t.Errorf("len_word \"stop\": %v alone, %v in a 16-word reply; want one each, different buckets", bare[kindLenWord], long[kindLenWord]["stop"])
	}
	if len(long[kindLenWord]) != 16 || len(long[kindBigram]) != 0 {
		t.Errorf("the 16-word reply (no negator) has %d len_word and %d bigram features, want 16 and 0", len(long[kindLenWord]), len(long[kindBigram]))
	}
	if len(bare[kindLen]) != 1 || len(long[kindLen]) != 1 || slices.Collect(maps.Values(bare[kindLen]))[0] == slices.Collect(maps.Values(long[kindLen]))[0] {
		t.Errorf("length feature: %v alone, %v long; want one each, different", bare[kindLen], long[kindLen])
	}
	// Same length class, same crossed feature; another class, another.
	if a, b := features(s, "stop it now")[kindLenWord]["stop"], features(s, "stop it")[kindLenWord]["stop"]; a != b {
		t.Errorf("len_word \"stop\" in 3 words %d, in 2 words %d: want the same (one class)", a, b)
	}
	// The default spec has none of them, and the features of a spec with
	// len_words start with exactly those of the same spec without: a
	// version-1 model extracts what it always did.
	d := DefaultSpec()
	with := d
	with.LenWords = true
	for _, text := range multilingual {
		p := d.prepare(nil, text)
		base := d.extract(nil, p, nil)
		more := with.extract(nil, p, nil)
		if len(more) < len(base) || !slices.Equal(more[:len(base)], base) {
			t.Errorf("extract(%q): the features with len_words do not start with those without", text)
		}
		if k := features(d, text); len(k[kindLenWord])+len(k[kindLen]) != 0 {
			t.Errorf("extract(%q) with the default spec has len_word or length features: %v", text, k)
		}
	}
	// No words, no length feature.
	if k := features(s, " !! "); len(k[kindLen]) != 0 {
		t.Errorf("features of a reply without words: %v, want no length feature", k)
	}
}

// Explain names the length feature by its class.
func TestExplainLength(t *testing.T) {
	_, m := trainFixture(t, Inbound, Params{Epochs: 3})
	seen := map[string]bool{}
	for _, text := range []string{"stop", "please stop", "stop sending me these", "please stop sending me these messages, I already told you twice"} {
		for c := range m.Classes {
			for _, x := range m.Explain(text, c, 1000) {
				if x.Kind == "length" {
					seen[x.Feature] = true
				}
			}
		}
	}
	for f := range seen {
		if !slices.Contains(lenNames[:], f) {
			t.Errorf("Explain: length feature %q, want one of %v", f, lenNames)
		}
	}
	if len(seen) == 0 {
		t.Errorf("Explain never showed a length feature over every class of four replies")
	}
}

// withVersion rewrites a model file's format version and header JSON and
// seals it with a fresh checksum, so only what the test changed is wrong.
func withVersion(t *testing.T, b []byte, v uint32, header func(map[string]any)) []byte {
	t.Helper()
	hl := int(binary.LittleEndian.Uint32(b[len(magic)+4:]))
	start := len(magic) + 8
	var h map[string]any
	if err := json.Unmarshal(b[start:start+hl], &h); err != nil {
		t.Fatal(err)
	}
	if header != nil {
		header(h)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), magic[:]...)
	out = binary.LittleEndian.AppendUint32(out, v)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(hj)))
	out = append(out, hj...)
	out = append(out, b[start+hl:len(b)-sha256.Size]...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// Load reads version-1 files (made before len_words and edges) and
// version-2 ones (version 3 is TestNegatorFile's), and refuses what it cannot read: a newer version, a
// version-1 file that names a version-2 feature, a header field it does
// not know (a feature this build lacks would be misread, not refused).
func TestLoadVersions(t *testing.T) {
	v2, _, err := Train(Outbound, fixture(t, Outbound), DefaultSpec(), Params{Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	in2spec := TaskSpec(Inbound) // format 2's inbound spec: without the format-3 fields
	in2spec.Negators, in2spec.NegWindow, in2spec.CharWeight, in2spec.NegBigrams = "", 0, 0, false
	in2spec.Concepts, in2spec.ConceptNeg, in2spec.ConceptPairs, in2spec.NegChars = "", false, 0, false
	in2, _, err := Train(Inbound, fixture(t, Inbound), in2spec, Params{Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(v2[len(magic):]); v != 2 || FormatVersion != 6 {
		t.Fatalf("Train without negators or a character weight wrote format version %d, FormatVersion %d; want 2 and 6", v, FormatVersion)
	}
	v1 := withVersion(t, v2, 1, nil)
	m1, err := Load(v1)
	if err != nil {
		t.Fatalf("Load(version 1, default spec) = %v", err)
	}
	m2, err := Load(v2)
	if err != nil {
		t.Fatalf("Load(version 2) = %v", err)
	}
	for _, s := range multilingual {
		if a, b := m1.Predict(s, nil), m2.Predict(s, nil); !slices.Equal(a, b) {
			t.Errorf("Predict(%q) = %v from version 1, %v from version 2; want the same", s, a, b)
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"a newer version", withVersion(t, v2, FormatVersion+1, nil)},
		{"version 0", withVersion(t, v2, 0, nil)},
		{"version 1 with len_words", withVersion(t, in2, 1, nil)},
		{"unknown header field", withVersion(t, v2, 2, func(h map[string]any) { h["spec"].(map[string]any)["word_trigrams"] = true })},
		{"unknown top-level field", withVersion(t, v2, 2, func(h map[string]any) { h["hidden_layer"] = 32 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.b); !errors.Is(err, ErrFormat) {
				t.Errorf("Load(%s) = %v, want ErrFormat", tc.name, err)
			}
		})
	}
	if _, err := Load(withVersion(t, in2, 2, nil)); err != nil {
		t.Errorf("Load(re-sealed version 2 inbound) = %v; the test's rewriting is wrong", err)
	}
	if !bytes.Equal(withVersion(t, v2, 2, nil)[:len(magic)+4], v2[:len(magic)+4]) {
		t.Errorf("withVersion changed the magic")
	}
}

func TestUnleet(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"huge d1sc0unt on 4ll pr0ducts", "huge discount on 4ll products"},
		{"fr33dom s4le c1ick", "freedom sale ciick"}, // 1 reads as i, never l
		{"save50 get20 5pm 10am covid19 order 4412 2nd", "save50 get20 5pm 10am covid19 order 4412 2nd"},
		{"ab12cd inv2024a a123b", "ab12cd inv2024a a123b"}, // a 2, or a run of three
		{"ск1дка", "скiдка"},                               // a letter of any script on both sides
		{"", ""},
	} {
		if got := unleet(tc.in); got != tc.want {
			t.Errorf("unleet(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, s := range []string{"your order 4412 has shipped", "save50 now"} {
		if n := testing.AllocsPerRun(100, func() { unleet(s) }); n != 0 {
			t.Errorf("unleet(%q) allocates %v times, want 0", s, n)
		}
	}
}

// extract is extractNeg without negator marks.
func (s *Spec) extract(dst []uint32, p []byte, spans *[]span) []uint32 {
	dst, _ = s.extractNeg(dst, p, nil, spans)
	return dst
}

// The inbound spec reads word order where a negator is: moving the
// messages to e-mail and moving them to WhatsApp hold the same words and
// differ in their negator bigrams, in every script; a bigram without a
// negator is not a feature, and the buckets are 2^19 (outbound 2^18).
func TestInboundWordOrder(t *testing.T) {
	s := TaskSpec(Inbound)
	if s.Words != 1 || !s.NegBigrams || s.BucketBits != 19 || TaskSpec(Outbound).BucketBits != 18 || TaskSpec(Outbound).NegBigrams {
		t.Fatalf("TaskSpec(inbound) = %+v: want words 1, neg_bigrams, bucket_bits 19; outbound bucket_bits 18 without neg_bigrams", s)
	}
	for _, tc := range []struct {
		a, b    string
		bigrams []string // of a, every one
	}{
		{"send it to e-mail, not WhatsApp", "send it to WhatsApp, not e-mail", []string{"mail not", "not whatsapp"}},
		{"muhasebe mailine atın, telefona değil abi", "telefona atın, muhasebe mailine değil abi", []string{"telefona degil", "degil abi"}},
		{"ارسلها على الايميل مو الواتساب", "ارسلها على الواتساب مو الايميل", []string{"الايميل مو", "مو الواتساب"}},
		{"ईमेल पर भेजो, व्हाट्सएप नहीं", "व्हाट्सएप पर भेजो, ईमेल नहीं", []string{"व्हाट्सएप नहीं"}},
		{"mándeselas a su papá, a mí ya no 🙏", "a su papá ya no, mándeselas a mí 🙏", []string{"ya no"}},
	} {
		t.Run(tc.a, func(t *testing.T) {
			fa, fb := features(s, tc.a), features(s, tc.b)
			if !maps.Equal(fa[kindWord], fb[kindWord]) {
				t.Fatalf("word features of %q = %v, of %q = %v: want the same words", tc.a, fa[kindWord], tc.b, fb[kindWord])
			}
			if maps.Equal(fa[kindBigram], fb[kindBigram]) {
				t.Errorf("bigram features of %q = %v, of %q the same: want word order to show", tc.a, fa[kindBigram], tc.b)
			}
			got := slices.Sorted(maps.Keys(fa[kindBigram]))
			want := slices.Sorted(slices.Values(tc.bigrams))
			if !slices.Equal(got, want) {
				t.Errorf("bigram features of %q = %v, want %v", tc.a, got, want)
			}
			for _, b := range fa[kindBigram] {
				if b >= 1<<19 {
					t.Errorf("bucket %d of %q: want below 2^19", b, tc.a)
				}
			}
		})
	}
}

// mustMarks is s.marks() for a spec known to be well formed.
func mustMarks(s Spec) *marks {
	mk, err := s.marks()
	if err != nil {
		panic(err)
	}
	return mk
}
