// Package benchmix derives the bench harness's second request mix, every
// allowed request with a message text of its own (issue 11: "a stream of
// unique messages does not fall off a cliff"), from the harness's default mix
// (../shared/bench/mixes/default.json): the same requests in the same order,
// the same keys, instances, phones, purposes and denials; only the message of
// each allowed request is replaced by a multilingual transactional text
// (Arabic, Hindi, Turkish, English, emoji) that carries a number of its own.
//
// Unique is a pure function: the same input gives byte-identical output.
package benchmix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Mix is a loadgen request-mix file.
type Mix struct {
	Description string    `json:"description"`
	Host        string    `json:"host"`
	Path        string    `json:"path"`
	Requests    []Request `json:"requests"`
}

// Request is one request template of a mix.
type Request struct {
	Name          string          `json:"name"`
	Weight        int             `json:"weight"`
	Authorization *string         `json:"authorization,omitempty"`
	Body          string          `json:"body"`
	Expect        json.RawMessage `json:"expect"`
}

// Allowed is the name the harness gives requests the contract allows.
const Allowed = "allowed"

// sendBody is an allowed request's body: every field the contract reads, in
// the order the harness writes them.
type sendBody struct {
	InstanceID     string `json:"instance_id"`
	Phone          string `json:"phone"`
	Message        string `json:"message"`
	MessagePurpose string `json:"message_purpose"`
}

var (
	namesAr = []string{"سارة", "عمر", "ليلى", "خالد", "نورة"}
	namesHi = []string{"प्रिया", "राहुल", "अनीता", "विकास"}
	namesTr = []string{"Ayşe", "Mehmet", "Zeynep", "Emre", "Şule"}
	daysAr  = []string{"الأحد", "الإثنين", "الثلاثاء", "الأربعاء", "الخميس"}
	daysHi  = []string{"सोमवार", "मंगलवार", "बुधवार", "गुरुवार", "शुक्रवार"}
	daysTr  = []string{"Pazartesi", "Salı", "Çarşamba", "Perşembe", "Cuma"}
)

// templates are transactional messages a sender of one-to-one notifications
// writes; n is unique per request, so every text is unique. Each was checked
// with `sendguard check` against the bench config: allowed, risk score 0.
var templates = []func(n int, r *rand.Rand) string{
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("تم شحن طلبك رقم %d وسيصل خلال يومين. شكراً لك.", n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("رمز التحقق الخاص بك هو %06d. صالح لمدة 10 دقائق. (مرجع %d)", r.IntN(1000000), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("مرحباً %s، تم تحديث تذكرة الدعم رقم %d. 🙂", namesAr[r.IntN(len(namesAr))], n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("فاتورتك رقم INV-%d جاهزة للتنزيل من صفحة حسابك.", n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("مرحبا، موعدك يوم %s الساعة %d:00. أرسل 1 للتأكيد أو 2 لإعادة الجدولة. 📅 رقم الحجز %d",
			daysAr[r.IntN(len(daysAr))], 8+r.IntN(9), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("आपका ऑर्डर #%d भेज दिया गया है। यह कल तक पहुँच जाएगा।", n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("आपका सत्यापन कोड %06d है। यह 10 मिनट में समाप्त हो जाएगा। संदर्भ %d", r.IntN(1000000), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("आपका भुगतान ₹%d.%02d प्राप्त हो गया है। धन्यवाद 🙏 रसीद %d", 10+r.IntN(5000), r.IntN(100), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("नमस्ते %s, आपकी अपॉइंटमेंट %s को %d:00 बजे है। 🗓️ बुकिंग %d",
			namesHi[r.IntN(len(namesHi))], daysHi[r.IntN(len(daysHi))], 9+r.IntN(8), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("Siparişiniz #%d kargoya verildi. Yarın teslim edilecektir.", n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("Randevunuz %s günü saat %d:00'da. Onaylamak için 1, ertelemek için 2 yazın. Kayıt no %d",
			daysTr[r.IntN(len(daysTr))], 9+r.IntN(8), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("✅ Ödemeniz alındı: %d.%02d TL. Teşekkür ederiz 🙏 (işlem %d)", 10+r.IntN(5000), r.IntN(100), n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("Merhaba %s, destek talebiniz #%d güncellendi. Yardım için bu mesajı yanıtlayın.",
			namesTr[r.IntN(len(namesTr))], n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("Şifreniz değiştirildi. Bu siz değilseniz destek ekibimizle iletişime geçin. 🔐 Kod %d", n)
	},
	func(n int, r *rand.Rand) string {
		return fmt.Sprintf("📦 Your parcel #%d is out for delivery today ✅", n)
	},
}

// Unique returns a copy of m in which the message of every allowed request
// is a text no other request of the mix has. The seed picks the template
// and the details of each message. An allowed request whose body is not the
// harness's four-field JSON object is an error (the mix is not the one this
// function was written for).
func Unique(m Mix, seed uint64) (Mix, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := m
	out.Requests = make([]Request, len(m.Requests))
	copy(out.Requests, m.Requests)
	allowed := 0
	for i, req := range out.Requests {
		if req.Name != Allowed {
			continue
		}
		var b sendBody
		dec := json.NewDecoder(strings.NewReader(req.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return Mix{}, fmt.Errorf("request %d: allowed body: %w", i, err)
		}
		if b.InstanceID == "" || b.Phone == "" || b.Message == "" || b.MessagePurpose == "" {
			return Mix{}, fmt.Errorf("request %d: allowed body lacks a field: %s", i, req.Body)
		}
		// 100000+i: unique per request; the template varies by a random pick
		b.Message = templates[r.IntN(len(templates))](100000+i, r)
		body, err := compactJSON(b)
		if err != nil {
			return Mix{}, fmt.Errorf("request %d: %w", i, err)
		}
		out.Requests[i].Body = body
		allowed++
	}
	out.Description = fmt.Sprintf("sendguard unique-text mix (seed %d), derived from: %s; each of the %d allowed requests has a message text of its own (Arabic, Hindi, Turkish, emoji)",
		seed, m.Description, allowed)
	return out, nil
}

// Encode writes m as the harness writes its mixes: indented by one space,
// HTML characters not escaped, a final newline.
func Encode(m Mix) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode mix: %w", err)
	}
	return b.Bytes(), nil
}

// Decode parses a mix file; a file with no requests is an error.
func Decode(data []byte) (Mix, error) {
	var m Mix
	if err := json.Unmarshal(data, &m); err != nil {
		return Mix{}, fmt.Errorf("decode mix: %w", err)
	}
	if len(m.Requests) == 0 {
		return Mix{}, fmt.Errorf("decode mix: no requests")
	}
	return m, nil
}

// Message returns the message text of a request body, or "" when the body
// is not a JSON object with a string message.
func Message(body string) string {
	var b struct {
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(body), &b) != nil {
		return ""
	}
	return b.Message
}

func compactJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("encode body: %w", err)
	}
	return strings.TrimRight(b.String(), "\n"), nil
}
