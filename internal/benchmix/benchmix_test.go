package benchmix

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

// checkedIn is the mix `make bench-compare MIX=bench/mixes/unique.json` uses.
const checkedIn = "../../bench/mixes/unique.json"

// seed is the seed the checked-in file was written with (benchcompare's default).
const seed = 20261127

func loadCheckedIn(t *testing.T) Mix {
	t.Helper()
	data, err := os.ReadFile(checkedIn)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode(%s): %v", checkedIn, err)
	}
	return m
}

// TestCheckedInMixUnique: the file parses; every allowed request has a
// message no other request of the mix has; the structure is the default
// mix's (800 allowed, 20 per denial code); the texts cover Arabic, Hindi,
// Turkish and emoji.
func TestCheckedInMixUnique(t *testing.T) {
	m := loadCheckedIn(t)
	if m.Host != "api.sendguard.local" || m.Path != "/api/send-message" {
		t.Errorf("host, path = %q, %q; want api.sendguard.local, /api/send-message", m.Host, m.Path)
	}
	names := map[string]int{}
	seen := map[string]int{}
	for i, r := range m.Requests {
		names[r.Name]++
		var e struct {
			Allowed *bool `json:"allowed"`
		}
		if err := json.Unmarshal(r.Expect, &e); err != nil || e.Allowed == nil || *e.Allowed != (r.Name == Allowed) {
			t.Errorf("request %d (%s): expect %s, want allowed=%v", i, r.Name, r.Expect, r.Name == Allowed)
		}
		if r.Name != Allowed {
			continue
		}
		var b sendBody
		dec := json.NewDecoder(strings.NewReader(r.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil || b.InstanceID == "" || b.Phone == "" || b.Message == "" || b.MessagePurpose == "" {
			t.Errorf("request %d: body %s (%v), want the four fields", i, r.Body, err)
		}
		if r.Authorization == nil || !strings.HasPrefix(*r.Authorization, "Bearer sg_live_") {
			t.Errorf("request %d: authorization %v, want a Bearer key", i, r.Authorization)
		}
		if j, dup := seen[b.Message]; dup {
			t.Errorf("request %d: message %q repeats request %d's", i, b.Message, j)
		}
		seen[b.Message] = i
	}
	if names[Allowed] != 800 || len(seen) != 800 {
		t.Errorf("allowed requests %d with %d distinct messages, want 800 and 800", names[Allowed], len(seen))
	}
	denials := 0
	for n, c := range names {
		if n != Allowed {
			denials += c
		}
	}
	if denials != 200 {
		t.Errorf("denials = %d, want 200 (20 for each of the 10 codes)", denials)
	}
	// no denial request reuses an allowed request's text either
	for i, r := range m.Requests {
		if r.Name == Allowed {
			continue
		}
		if j, dup := seen[Message(r.Body)]; dup {
			t.Errorf("request %d (%s): message repeats allowed request %d's", i, r.Name, j)
		}
	}
	scripts := map[string]func(rune) bool{
		"Arabic":   func(r rune) bool { return unicode.Is(unicode.Arabic, r) },
		"Hindi":    func(r rune) bool { return unicode.Is(unicode.Devanagari, r) },
		"Turkish":  func(r rune) bool { return strings.ContainsRune("şğıİŞĞ", r) },
		"emoji":    func(r rune) bool { return r >= 0x1F300 || (r >= 0x2600 && r <= 0x27BF) },
		"ASCII":    func(r rune) bool { return r < 0x80 && unicode.IsLetter(r) },
		"combined": func(r rune) bool { return unicode.Is(unicode.Mn, r) }, // Devanagari vowel signs
	}
	for name, in := range scripts {
		n := 0
		for msg := range seen {
			if strings.IndexFunc(msg, in) >= 0 {
				n++
			}
		}
		if n < 50 {
			t.Errorf("%s: %d of 800 messages, want at least 50", name, n)
		}
	}
}

// TestCheckedInMixIsGenerated: the checked-in file is what Unique writes.
// Unique replaces only the allowed messages, from the seed and the positions
// of the allowed requests, so applying it to its own output reproduces
// every request byte for byte.
func TestCheckedInMixIsGenerated(t *testing.T) {
	m := loadCheckedIn(t)
	again, err := Unique(m, seed)
	if err != nil {
		t.Fatalf("Unique(%s): %v", checkedIn, err)
	}
	for i := range m.Requests {
		if !reflect.DeepEqual(again.Requests[i], m.Requests[i]) {
			t.Fatalf("request %d: Unique gives %+v, the file has %+v; regenerate with `go run ./cmd/benchcompare uniquemix`", i, again.Requests[i], m.Requests[i])
		}
	}
}

func TestUnique(t *testing.T) {
	key := "Bearer sg_live_0123"
	same := `{"instance_id":"inst_1","phone":"+966500000001","message":"Your order #1 has shipped.","message_purpose":"transactional"}`
	in := Mix{Description: "d", Host: "h", Path: "/p"}
	for range 200 { // every allowed request the same text
		in.Requests = append(in.Requests, Request{Name: Allowed, Weight: 1, Authorization: &key, Body: same, Expect: json.RawMessage(`{"allowed":true}`)})
	}
	deny := Request{Name: "deny/invalid_json", Weight: 1, Authorization: &key, Body: `{"instance_id":`, Expect: json.RawMessage(`{"allowed":false}`)}
	in.Requests = append(in.Requests, deny)

	a, err := Unique(in, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Unique(in, 7)
	if err != nil {
		t.Fatal(err)
	}
	ea, _ := Encode(a)
	eb, _ := Encode(b)
	if string(ea) != string(eb) {
		t.Errorf("Unique(in, 7) twice: outputs differ")
	}
	if in.Requests[0].Body != same {
		t.Errorf("Unique changed its input: %s", in.Requests[0].Body)
	}
	if !reflect.DeepEqual(a.Requests[200], deny) {
		t.Errorf("denial = %+v, want it untouched %+v", a.Requests[200], deny)
	}
	msgs := map[string]bool{}
	for i, r := range a.Requests[:200] {
		var got, orig sendBody
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
			t.Fatalf("request %d: %s: %v", i, r.Body, err)
		}
		json.Unmarshal([]byte(same), &orig)
		if got.InstanceID != orig.InstanceID || got.Phone != orig.Phone || got.MessagePurpose != orig.MessagePurpose {
			t.Errorf("request %d: body %s, want instance, phone and purpose of %s", i, r.Body, same)
		}
		if !strings.HasPrefix(r.Body, `{"instance_id":"inst_1","phone":"+966500000001","message":"`) || strings.Contains(r.Body, `\u`) {
			t.Errorf("request %d: body %s, want the harness's field order and unescaped text", i, r.Body)
		}
		msgs[got.Message] = true
	}
	if len(msgs) != 200 {
		t.Errorf("Unique: %d distinct messages of 200", len(msgs))
	}
	if c, _ := Unique(in, 8); reflect.DeepEqual(c.Requests, a.Requests) {
		t.Errorf("Unique(in, 8) = Unique(in, 7), want the seed to matter")
	}
}

func TestUniqueRejects(t *testing.T) {
	for _, body := range []string{
		`{"instance_id":"i","phone":"p","message":"m","message_purpose":"support","extra":1}`,
		`{"instance_id":"i","phone":"p","message":"m"}`,
		`not json`,
	} {
		in := Mix{Requests: []Request{{Name: Allowed, Body: body}}}
		if _, err := Unique(in, 1); err == nil {
			t.Errorf("Unique(allowed body %s) = nil error, want an error", body)
		}
	}
	if _, err := Decode([]byte(`{"requests":[]}`)); err == nil {
		t.Errorf("Decode(no requests) = nil error, want an error")
	}
}

func TestTemplatesUnique(t *testing.T) {
	// each template gives different texts for different numbers, with the
	// same random details
	for i, f := range templates {
		a := f(100001, rand.New(rand.NewPCG(1, 2)))
		b := f(100002, rand.New(rand.NewPCG(1, 2)))
		if a == b {
			t.Errorf("template %d: %q for two numbers", i, a)
		}
	}
}

func ExampleMessage() {
	fmt.Println(Message(`{"message":"Siparişiniz #100233 kargoya verildi."}`))
	// Output: Siparişiniz #100233 kargoya verildi.
}
