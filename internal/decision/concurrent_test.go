package decision

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/inbound"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/optout"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/store"
)

// multilingual are message texts off the ASCII fast paths: Arabic with and
// without harakat, Hindi with matras, Turkish dotted and dotless i, emoji
// ZWJ sequences and skin tones, combining marks, Urdu, mixed scripts, plus
// spam in several of them so that answers differ.
var multilingual = []string{
	"طلبك رقم 1042 تم شحنه",
	"طَلَبُكَ رَقْمُ ١٠٤٢ تَمَّ شَحْنُهُ وَسَيَصِلُ غَدًا",
	"مبروك! لقد ربحت جائزة!!! اضغط هنا الآن",
	"عرض خاص خصم 50% استخدم الكود SAVE50 اشتر الآن",
	"आपका ऑर्डर 1042 भेज दिया गया है",
	"आपका ओटीपी कोड 482913 है, इसे किसी के साथ साझा न करें",
	"बधाई हो! आपने इनाम जीता है!!! अभी क्लिक करें",
	"SİPARİŞİNİZ 1042 KARGOYA VERİLDİ",
	"Siparişiniz ıslak zemin nedeniyle gecikti, sipariş no 5521",
	"İSTANBUL'da büyük İNDİRİM! Şimdi satın al, %50 indirim",
	"Your order 1042 has shipped 👨‍👩‍👧‍👦 👍🏽 🏳️‍🌈 🧑🏾‍💻",
	"🎉🎉🎉 YOU HAVE WON 🏆 CLAIM NOW 👉 bit.ly/x 👈",
	"Cafe\u0301 order 1042 re\u0301sume\u0301 cre\u0300me bru\u0302le\u0301e",
	"promocio\u0301n 50% descuento compra ya",
	"آپ کا آرڈر نمبر 1042 روانہ کر دیا گیا ہے",
	"Order 1042: طلبك تم شحنه — आपका ऑर्डर भेज दिया 🚚 İyi günler",
	"YOU HAVE WON A PRIZE!!!!!",
	"Your order #2041 has been shipped.",
	"\u200f\u202eطلبك\u202c\u200d رقم\u2066 1042\u2069 \ufeff",
	strings.Repeat("طَلَبُكَ رَقْمُ 1042 تَمَّ شَحْنُهُ. ", 60),
	strings.Repeat("आपका ऑर्डर भेज दिया गया है। İıIi e\u0301 👍🏽 ", 40),
}

// inboundTexts are replies on the inbound webhook: opt-outs, opt-ins and
// neither, in several scripts (optout.Normalize and its case folder run on
// each).
var inboundTexts = []string{"STOP", "إيقاف", "الغاء الاشتراك", "İPTAL", "रोकें", "start", "Thanks, see you tomorrow", "ÇIK", "ستوب 🙏🏽", "e\u0301"}

// serveDecider builds a Decider the way cmd/sendguard/serve.go does: the
// embedded policies, a real phone Normalizer and risk Scanner, a memory
// store, the abuse tracker and the inbound webhook with the opt-out
// detector. Limits cannot be reached and auto-pause is off, so that the
// answer to a request does not depend on the requests before it. cold turns
// the policy memo, the phone cache and the text caches (the scanner's
// Signals, the fan-out body keys) off, so that every request evaluates Rego,
// parses its number and scans its text; otherwise they are on as serve
// runs them.
func serveDecider(t testing.TB, cold bool) *Decider {
	t.Helper()
	ctx := context.Background()
	popts, phopts := policy.Options{}, phone.Options{DefaultRegion: "SA"}
	textCache := 8192 // as serve runs it
	if cold {
		popts.CacheEntries, phopts.CacheSize, textCache = -1, -1, 0
	}
	engine, err := policy.New(ctx, popts)
	if err != nil {
		t.Fatal(err)
	}
	phones, err := phone.New(phopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(phones.Close)
	st := store.NewMemory(limiter.Calendar{})
	unlimited := limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}
	detector := optout.New(optout.DefaultLists())
	recorder := &inbound.Recorder{
		Instances: map[string]inbound.Instance{"inbox": {ID: "inbox"}},
		State:     st, Phones: phones,
		Classify: func(text string) (string, string) {
			r := detector.Classify(text)
			return string(r.Intent), r.Matched
		},
		Now: func() time.Time { return testNow },
	}
	var n atomic.Int64
	d, err := New(Options{
		Scanner:      risk.New(risk.Options{CacheSize: textCache}),
		BodyKeyCache: textCache,
		Abuse:        st,
		Inbound: &Inbound{Routes: []Route{{Method: "POST", Path: "/webhooks/inbound"}}, Recorder: recorder, Fields: DefaultFields,
			Signature: &Signature{Header: "X-Hub-Signature-256", Prefix: "sha256=", Secrets: [][]byte{[]byte(inboundSecret)}}},
		Keys: keys.NewKeyring([]keys.Entry{
			{SHA256: keys.Hash("key-demo"), Key: keys.Key{ID: "k1", Account: "demo"}},
			{SHA256: keys.Hash("key-revoked"), Key: keys.Key{ID: "k2", Account: "demo", Revoked: true}},
		}),
		Instances: map[string]Instance{
			"shop": {ID: "shop", Account: "demo", Plan: "starter", Limits: unlimited,
				Abuse: abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1 << 30, FanOutBlock: 1 << 30}},
			"paused": {ID: "paused", Account: "demo", Plan: "starter", Limits: unlimited},
		},
		Policy: engine,
		State:  st,
		Phones: phones,
		Now:    func() time.Time { return testNow },
		NewID:  func() string { return fmt.Sprintf("dec-%d", n.Add(1)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetPaused(ctx, "paused", true)
	_ = st.PutSuppression(ctx, store.Suppression{Instance: "shop", Phone: "+966500000000", Reason: "recipient_requested_stop"})
	return d
}

// concurrentRequests is every multilingual message under several purposes,
// recipients and instances, a few malformed bodies, and inbound replies
// (each from its own number, so that one opt-out cannot change another
// request's answer).
func concurrentRequests() []Request {
	var reqs []Request
	add := func(b []byte) {
		reqs = append(reqs, Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: b})
	}
	phones := []string{recipient, "+٩٦٦٥٠١٢٣٤٥٦٨", "00966 50 123 4569", "+966500000000", "+91 98765 43210", "+90 532 123 45 67"}
	purposes := []string{"transactional", "Authentication", "marketing", "", "support"}
	for i, m := range multilingual {
		for j, p := range purposes {
			add(send("shop", phones[(i+j)%len(phones)], m, p))
		}
		add(send("paused", recipient, m, "transactional"))
		add(send("nope", recipient, m, "transactional"))
	}
	for _, b := range []string{`{"instance_id":"shop","phone":"+966501234567","message":"طلبك`, `[`, `{"message":"आपका"}`, "\xef\xbb\xbf{}", `{"instance_id":"shop","phone":"١٢","message":"İ"}`} {
		add([]byte(b))
	}
	reqs = append(reqs, Request{Method: "POST", Path: "/api/send-message", Authorization: keyRevoked, Body: send("shop", recipient, multilingual[0], "transactional")})
	// The request-shape checks (issue 8) under the same load: spellings of
	// the path, queries, media types, ambiguous and invisible bodies, with
	// Arabic, Hindi and emoji in them.
	ok := send("shop", recipient, "طلبك رقم 1042 تم شحنه 📦", "transactional")
	for _, r := range []Request{
		{Method: "POST", Path: "/api;v=1/send-message.json"},
		{Method: "POST", Path: "/api/%D8%B7%D9%84%D8%A8/../send-message"},
		{Method: "POST", Path: "/api/send-message%3F"},
		{Method: "POST", Path: "/api／send-message"},
		{Method: "PUT", Path: "/API/Send-Message/"},
		{Method: "GET", Path: "/api/send-message"},
		{Method: "POST", Path: "/api/send-message", Query: "phone=%2B966500000000"},
		{Method: "POST", Path: "/api/send-message", Query: "lang=ar&ref=%D8%B7"},
		{Method: "POST", Path: "/api/send-message", ContentType: "application/x-www-form-urlencoded"},
		{Method: "POST", Path: "/api/send-message", ContentType: "application/json; charset=utf-7"},
		{Method: "POST", Path: "/api/send-message", ContentType: "Application/JSON; charset=UTF-8"},
		{Method: "POST", Path: "/api/send-message", ContentEncoding: "gzip"},
		{Method: "POST", Path: "/api/send-message", Body: []byte(`{"instance_id":"shop","phone":"+966501234567","phone":"+966500000000","message":"आपका ऑर्डर","message_purpose":"transactional"}`)},
		{Method: "POST", Path: "/api/send-message", Body: []byte(`{"instance_id":"shop","Phone":"+966500000000","phone":"+966501234567","message":"😀","message_purpose":"transactional"}`)},
		{Method: "POST", Path: "/api/send-message", Body: []byte(`{"instance_id":"shop","phone":"\u200f+966501234567","message":"مرحبا","message_purpose":"transactional"}`)},
		{Method: "POST", Path: "/api/send-message", Body: []byte(`{"instance_id":"shop","phone":"+966501234567","message":"\u200b\u200d\ufe0f ","message_purpose":"transactional"}`)},
	} {
		r.Authorization = keyDemo
		if r.Body == nil && r.Method != "GET" {
			r.Body = ok
		}
		reqs = append(reqs, r)
	}
	for i, text := range inboundTexts {
		b, _ := json.Marshal(map[string]string{"instance_id": "inbox", "from": fmt.Sprintf("+9665012300%02d", i), "message_text": text})
		sig := map[string]string{"x-hub-signature-256": metaSign(inboundSecret, b)}
		if i%3 == 2 {
			sig = nil // a forgery among them: allowed, not recorded
		}
		reqs = append(reqs, Request{Method: "POST", Path: "/webhooks/inbound", Body: b, Headers: sig})
	}
	return reqs
}

// answer is what a client, the sender and the logs see of a Result, less
// the decision id and the quota usage (which count requests).
type answer struct {
	Send, Allowed, Inbound, AutoPaused bool
	Code                               catalog.Code
	Status, RiskScore                  int
	Body                               string
	Headers                            string
	Purpose, Account, Instance, KeyID  string
	Intent, InboundResult, Phone       string
}

func answerOf(res Result) answer {
	return answer{
		Send: res.Send, Allowed: res.Allowed, Inbound: res.Inbound, AutoPaused: res.AutoPaused,
		Code: res.Code, Status: res.Status, RiskScore: res.RiskScore, Body: string(res.Body),
		Headers: fmt.Sprint(res.Headers), Purpose: res.Purpose, Account: res.Account, Instance: res.Instance,
		KeyID: res.KeyID, Intent: res.Intent, InboundResult: res.InboundResult, Phone: res.Phone,
	}
}

// TestConcurrentMultilingualDecisions runs the whole decision from 32
// goroutines at once over multilingual messages and checks that every
// answer is the answer the same request gets alone. A package-level value
// that holds state (the risk scanner's shared transform.Chain, before
// issue 8) fails it under -race, and without -race by a panic or a wrong
// answer. It runs with the caches as shipped (the concurrent requests then
// mostly hit the policy memo) and cold (each one evaluates Rego).
func TestConcurrentMultilingualDecisions(t *testing.T) {
	for _, tc := range []struct {
		name string
		cold bool
		perG int
	}{{"cached", false, 100}, {"cold", true, 20}} {
		t.Run(tc.name, func(t *testing.T) { testConcurrentDecisions(t, serveDecider(t, tc.cold), tc.perG) })
	}
}

func testConcurrentDecisions(t *testing.T, d *Decider, perG int) {
	reqs := concurrentRequests()
	ctx := context.Background()
	want := make([]answer, len(reqs))
	codes := map[catalog.Code]bool{}
	for i, r := range reqs {
		res, err := d.Decide(ctx, r)
		if err != nil {
			t.Fatalf("Decide(%q) alone: %v", r.Body, err)
		}
		want[i] = answerOf(res)
		codes[res.Code] = true
	}
	// The set must exercise denials as well as allows, or equal answers
	// would prove little.
	for _, c := range []catalog.Code{"", catalog.PolicyViolation, catalog.MessagePurposeNotAllowed, catalog.RecipientSuppressed, catalog.InvalidJSON, catalog.ValidationError, catalog.InstancePaused} {
		if !codes[c] {
			t.Errorf("no request answered %q alone; the corpus no longer covers it", c)
		}
	}

	goroutines := 32
	if testing.Short() {
		perG = max(10, perG/6)
	}
	var wg sync.WaitGroup
	var mismatches atomic.Int64
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				k := (g*131 + i*7) % len(reqs)
				res, err := d.Decide(ctx, reqs[k])
				if err != nil {
					t.Errorf("Decide(%q) concurrently: %v", reqs[k].Body, err)
					return
				}
				if got := answerOf(res); got != want[k] {
					if mismatches.Add(1) <= 5 {
						t.Errorf("Decide(%q) concurrently = %+v, want %+v", reqs[k].Body, got, want[k])
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := mismatches.Load(); n > 0 {
		t.Errorf("%d concurrent answers differ from the answer alone", n)
	}
}

// FuzzDecideConcurrent feeds one body to Decide from several goroutines at
// once, on the send route and the inbound route. None may panic or fail to
// decide; every denial is a documented code with its status and a JSON
// body; and all goroutines get the same answer. In CI it runs over the
// seed corpus; run it with
//
//	go test -race -run '^$' -fuzz FuzzDecideConcurrent ./internal/decision/
func FuzzDecideConcurrent(f *testing.F) {
	d := serveDecider(f, true)
	for _, m := range multilingual {
		f.Add(send("shop", recipient, m, "transactional"), false)
	}
	for _, m := range inboundTexts {
		b, _ := json.Marshal(map[string]string{"instance_id": "inbox", "from": "+966501230099", "message_text": m})
		f.Add(b, true)
	}
	for _, b := range []string{`{"instance_id":"shop","phone":"+966501234567","message":"طلبك`, `[[[{}]]]`, `{"a":`, "\xff\xfe", "\xef\xbb\xbf{}", `{"instance_id":"shop","phone":"+966501234567","message":"\u0000\u202e","message_purpose":7}`, `null`, `"x"`} {
		f.Add([]byte(b), false)
		f.Add([]byte(b), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, in bool) {
		r := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: body}
		if in {
			r = Request{Method: "POST", Path: "/webhooks/inbound", Body: body, Headers: map[string]string{"x-hub-signature-256": metaSign(inboundSecret, body)}}
		}
		const n = 4
		var got [n]answer
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := d.Decide(context.Background(), r)
				if err != nil {
					t.Errorf("Decide(%q) error: %v", body, err)
					return
				}
				if !res.Allowed {
					e, ok := catalog.Lookup(res.Code)
					if !ok || e.Status != res.Status || !json.Valid(res.Body) || !bytes.Contains(res.Body, []byte(`"error":"`+string(res.Code)+`"`)) {
						t.Errorf("Decide(%q) = %s %d %s, want a documented denial", body, res.Code, res.Status, res.Body)
					}
				}
				got[i] = answerOf(res)
			}()
		}
		wg.Wait()
		for i := 1; i < n; i++ {
			if got[i] != got[0] {
				t.Errorf("Decide(%q) concurrently = %+v and %+v, want one answer", body, got[0], got[i])
			}
		}
	})
}

// bodyKeys records the fan-out body key of each decision the store is
// asked to count.
type bodyKeys struct {
	counters
	mu   sync.Mutex
	keys map[string][16]byte // by decision id
}

func (b *bodyKeys) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	b.mu.Lock()
	b.keys[s.Decision] = s.Body
	b.mu.Unlock()
	return b.counters.TakeSend(ctx, s, now)
}

// With the body-key cache, each send is counted under abuse.BodyKey of its
// own message: from 16 goroutines, over multilingual messages that repeat
// (cache hits) and that differ only in a digit, a name or case (which
// BodyKey masks, or not).
func TestBodyKeyCache(t *testing.T) {
	d := serveDecider(t, false)
	rec := &bodyKeys{counters: d.opts.Abuse, keys: map[string][16]byte{}}
	d.opts.Abuse = rec
	var msgs []string
	for _, m := range multilingual {
		msgs = append(msgs, m, m+" 42", strings.ToUpper(m), "Hi Sara, "+m, "Hi Omar, "+m)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[string]string{} // message by decision id
	for g := range 16 {
		wg.Go(func() {
			for i := range 4 * len(msgs) {
				m := msgs[(g*7+i)%len(msgs)]
				res, err := d.Decide(ctx, Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: send("shop", recipient, m, "transactional")})
				if err != nil {
					t.Errorf("Decide(%q): %v", m, err)
					return
				}
				mu.Lock()
				sent[res.ID] = m
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.keys) < len(msgs) {
		t.Fatalf("%d sends counted, want at least %d", len(rec.keys), len(msgs))
	}
	for id, got := range rec.keys {
		if want := abuse.BodyKey(sent[id]); got != want {
			t.Errorf("send of %q counted under body key %x, want %x", sent[id], got, want)
		}
	}
	if st := d.bodyKeys.Stats(); st.Hits == 0 {
		t.Errorf("body-key cache: %+v, want hits", st)
	}
}
