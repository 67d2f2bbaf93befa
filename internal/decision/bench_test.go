package decision

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// BenchmarkDecideAllow measures the whole allow path: key lookup, body
// parse and validation, phone (cached), signals, Rego, limiter.
func BenchmarkDecideAllow(b *testing.B) {
	f := newFixture(b)
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Your order #2041 has been shipped.", "transactional")}
	ctx := context.Background()
	// Limits no benchmark run can reach, so every iteration is an allow.
	f.d.opts.Instances["shop"] = Instance{ID: "shop", Account: "demo", Plan: "starter",
		Limits: limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.d.Decide(ctx, req)
		if err != nil || !res.Allowed {
			b.Fatalf("not allowed: %s %v", res.Body, err)
		}
	}
}

// BenchmarkDecideDenyPurpose measures a Rego denial (marketing).
func BenchmarkDecideDenyPurpose(b *testing.B) {
	f := newFixture(b)
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Big sale today", "marketing")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := f.d.Decide(ctx, req); res.Allowed {
			b.Fatal("allowed")
		}
	}
}

// BenchmarkDecideDenyKey measures the cheapest denial (unknown key).
func BenchmarkDecideDenyKey(b *testing.B) {
	f := newFixture(b)
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: "Bearer nope", Body: []byte("{}")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := f.d.Decide(ctx, req); res.Allowed {
			b.Fatal("allowed")
		}
	}
}

// BenchmarkDecideAllowUncached is the allow path with the policy memo off:
// what a request costs when its policy input has not been seen before.
func BenchmarkDecideAllowUncached(b *testing.B) {
	f := newFixture(b)
	engine, err := policy.New(context.Background(), policy.Options{CacheEntries: -1})
	if err != nil {
		b.Fatal(err)
	}
	f.d.opts.Policy = engine
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Your order #2041 has been shipped.", "transactional")}
	ctx := context.Background()
	f.d.opts.Instances["shop"] = Instance{ID: "shop", Account: "demo", Plan: "starter",
		Limits: limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.d.Decide(ctx, req)
		if err != nil || !res.Allowed {
			b.Fatalf("not allowed: %s %v", res.Body, err)
		}
	}
}

// Whole decisions per second, in parallel as Envoy sends them, on each
// store with its durability as shipped (the embedded store's default, sync:
// interval: its log written before the answer, fsync'd every 10ms).
func BenchmarkDecideParallelMemory(b *testing.B) {
	benchParallel(b, store.NewMemory(limiter.Calendar{}))
}

func BenchmarkDecideParallelEmbedded(b *testing.B) {
	st, err := store.OpenEmbedded(filepath.Join(b.TempDir(), "state.db"), store.EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchParallel(b, st)
}

func BenchmarkDecideParallelRedis(b *testing.B) {
	srv := redistest.Start(b)
	st, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: srv.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchParallel(b, st)
}

func benchParallel(b *testing.B, st state) { benchParallelAbuse(b, st, nil) }

// benchParallelAbuse is benchParallel with c as the abuse counters, if not
// nil.
func benchParallelAbuse(b *testing.B, st state, c counters) {
	f := newFixture(b)
	f.d.opts.State = st
	f.d.opts.Now = time.Now
	var al abuse.Limits
	if c != nil {
		f.d.opts.Abuse, al = c, benchAbuse
	}
	for i := range 16 {
		id := fmt.Sprintf("shop-%d", i)
		f.d.opts.Instances[id] = Instance{ID: id, Account: "demo", Plan: "starter", Abuse: al,
			Limits: limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}}
	}
	var n atomic.Int64
	ctx := context.Background()
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
			Body: send(fmt.Sprintf("shop-%d", n.Add(1)%16), recipient, "Your order #2041 has been shipped.", "transactional")}
		for pb.Next() {
			res, err := f.d.Decide(ctx, req)
			if err != nil || !res.Allowed {
				b.Fatalf("not allowed: %s %v", res.Body, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// benchAbuse are abuse limits no benchmark reaches: every decision checks
// and counts them, none is refused by them.
var benchAbuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1 << 30, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}

// BenchmarkDecideAllowAbuse* are the allow path as serve runs it: the
// abuse counters checked and counted with the quotas in the store's
// TakeSend (on Redis one script, one round trip).
func BenchmarkDecideAllowAbuseMemory(b *testing.B) {
	benchAllowAbuse(b, store.NewMemory(limiter.Calendar{}))
}

func BenchmarkDecideAllowAbuseRedis(b *testing.B) {
	srv := redistest.Start(b)
	st, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: srv.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchAllowAbuse(b, st)
}

type abuseState interface {
	state
	counters
}

func benchAllowAbuse(b *testing.B, st abuseState) {
	f := newFixture(b)
	f.d.opts.State, f.d.opts.Abuse = st, st
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Your order #2041 has been shipped.", "transactional")}
	ctx := context.Background()
	f.d.opts.Instances["shop"] = Instance{ID: "shop", Account: "demo", Plan: "starter", Abuse: benchAbuse,
		Limits: limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.d.Decide(ctx, req)
		if err != nil || !res.Allowed {
			b.Fatalf("not allowed: %s %v", res.Body, err)
		}
	}
}

// Whole decisions per second in parallel, with the abuse counters.
func BenchmarkDecideParallelAbuseMemory(b *testing.B) {
	st := store.NewMemory(limiter.Calendar{})
	benchParallelAbuse(b, st, st)
}

// The timeout is generous so that a machine shared with other work does
// not fail the benchmark.
func BenchmarkDecideParallelAbuseRedis(b *testing.B) {
	srv := redistest.Start(b)
	st, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: srv.Addr(), Timeout: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchParallelAbuse(b, st, st)
}

// uniqueTemplates are the shapes of bench/mixes/unique.json's allowed
// texts: each send fills in a number of its own, so no two texts repeat.
var uniqueTemplates = []string{
	"📦 Your parcel #%d is out for delivery today ✅",
	"فاتورتك رقم INV-%d جاهزة للتنزيل من صفحة حسابك.",
	"تم شحن طلبك رقم %d وسيصل خلال يومين. شكراً لك.",
	"आपका भुगतान ₹%d प्राप्त हो गया है। धन्यवाद 🙏",
	"✅ Ödemeniz alındı: %d TL. Teşekkür ederiz 🙏",
	"Merhaba Emre, destek talebiniz #%d güncellendi. Yardım için bu mesajı yanıtlayın.",
	"Your verification code is %d. It expires in 10 minutes.",
	"Café reçu n° %d: merci ! e\u0301te\u0301 👍🏽",
}

// asciiTemplates are English texts of the default mix's kind (all ASCII,
// as every text of ../shared/bench/mixes/default.json is).
var asciiTemplates = []string{
	"Your parcel #%d is out for delivery today.",
	"Your invoice INV-%d is ready to download from your account page.",
	"Your order %d has shipped and will arrive within two days. Thank you.",
	"We received your payment of %d USD. Thank you.",
	"Hello Emre, your support ticket #%d was updated. Reply to this message for help.",
	"Your verification code is %d. It expires in 10 minutes.",
}

// BenchmarkDecideParallelUnique* are BenchmarkDecideParallelEmbedded as
// serve runs it (the content model, the store's abuse counters): every
// message text unique (bench/mixes/unique.json's shape) or one text per
// template repeated, multilingual or ASCII. Compare them with each other
// in one run: uniqueness against repetition, script against script. They
// report the policy memo's hit rate.
func BenchmarkDecideParallelUnique(b *testing.B) {
	benchTexts(b, func(i int64) string {
		return fmt.Sprintf(uniqueTemplates[i%int64(len(uniqueTemplates))], 100000+i)
	})
}

func BenchmarkDecideParallelUniqueRepeated(b *testing.B) {
	benchTexts(b, func(i int64) string {
		return fmt.Sprintf(uniqueTemplates[i%int64(len(uniqueTemplates))], 100000)
	})
}

func BenchmarkDecideParallelUniqueASCII(b *testing.B) {
	benchTexts(b, func(i int64) string {
		return fmt.Sprintf(asciiTemplates[i%int64(len(asciiTemplates))], 100000+i)
	})
}

func benchTexts(b *testing.B, text func(i int64) string) {
	st, err := store.OpenEmbedded(filepath.Join(b.TempDir(), "state.db"), store.EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	f := newFixture(b)
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	f.d.opts.Policy = engine
	f.d.opts.Scanner = risk.New(risk.Options{Model: m})
	f.d.opts.State, f.d.opts.Abuse = st, st
	f.d.opts.Now = time.Now
	for i := range 16 {
		id := fmt.Sprintf("shop-%d", i)
		f.d.opts.Instances[id] = Instance{ID: id, Account: "demo", Plan: "starter", Abuse: benchAbuse,
			Limits: limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}}
	}
	var n atomic.Int64
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration // each decision's, all goroutines'
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			i := n.Add(1)
			msg := text(i)
			req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
				Body: send(fmt.Sprintf("shop-%d", i%16), recipient, msg, "transactional")}
			start := time.Now()
			res, err := f.d.Decide(ctx, req)
			mine = append(mine, time.Since(start))
			if err != nil || !res.Allowed {
				b.Fatalf("Decide(%q) = %s %v, want allowed", msg, res.Body, err)
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(engine.MemoStats().HitRate(), "memo-hits")
	// The latency of one decision with 128 in flight: the tail is what
	// waits (for a lock, a CPU, the collector), not what computes.
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
