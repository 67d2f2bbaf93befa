package decision

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/limiter"
)

const suppressed = "+966500000000" // suppressed for "shop" in newFixture

// usage is the quota and bucket state of instance "shop".
func (f *fixture) usage(t testing.TB) limiter.Usage {
	t.Helper()
	u, err := f.store.Usage(context.Background(), "shop", f.d.opts.Instances["shop"].Limits, *f.now)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// decideNothingConsumed decides body and fails the test when the answer is
// not want or when it consumed quota or a token of "shop".
func (f *fixture) decideNothingConsumed(t *testing.T, body string, want catalog.Code) Result {
	t.Helper()
	before := f.usage(t)
	res := f.decide(t, keyDemo, []byte(body))
	if res.Code != want || res.Allowed != (want == "") {
		t.Fatalf("Decide(%q) = %q (allowed %v), want %q\nbody: %s", body, res.Code, res.Allowed, want, res.Body)
	}
	if want == "" {
		return res
	}
	if after := f.usage(t); after != before {
		t.Errorf("Decide(%q) = %q consumed: usage %+v before, %+v after", body, res.Code, before, after)
	}
	return res
}

// TestDuplicateKeys: a body in which sendguard and the sender could read
// different values for a field is invalid_json. Before the fix sendguard
// read the first "phone" and a Go, Python or JavaScript sender the last.
func TestDuplicateKeys(t *testing.T) {
	// Every field's clean value, and a value that must not pass sendguard.
	clean := map[string]string{"instance_id": "shop", "phone": recipient, "message": "Your order #2041 has been shipped.", "message_purpose": "transactional"}
	evil := map[string]string{"instance_id": "theirs", "phone": suppressed, "message": spam, "message_purpose": "marketing"}
	// Spellings of a second key that some JSON reader takes for the field.
	variants := func(name string) map[string]string {
		v := map[string]string{
			"exact":             name,
			"upper case":        strings.ToUpper(name),
			"title case":        strings.ToUpper(name[:1]) + name[1:],
			"escaped letter":    `\u00` + fmt.Sprintf("%x", name[0]) + name[1:],
			"escaped all":       escapeAll(name),
			"escaped upper":     escapeAll(strings.ToUpper(name)),
			"long s U+017F":     strings.ReplaceAll(name, "s", "ſ"),
			"escaped long s":    strings.ReplaceAll(name, "s", `\u017f`),
			"camel case":        camel(name),
			"dashes":            strings.ReplaceAll(name, "_", "-"),
			"underscores extra": "_" + name,
		}
		if strings.Contains(name, "e") {
			v["one letter upper"] = strings.Replace(name, "e", "E", 1)
		}
		return v
	}
	f := newFixture(t) // nothing is consumed: one fixture serves every case
	for _, field := range contract {
		for vname, key := range variants(field) {
			for _, order := range []string{"clean first", "evil first"} {
				t.Run(field+"/"+vname+"/"+order, func(t *testing.T) {
					first, last := clean[field], evil[field]
					if order == "evil first" {
						first, last = last, first
					}
					var b strings.Builder
					b.WriteString("{")
					for _, name := range contract {
						if name == field {
							fmt.Fprintf(&b, "%q:%q,", name, first)
						} else {
							fmt.Fprintf(&b, "%q:%q,", name, clean[name])
						}
					}
					fmt.Fprintf(&b, `"%s":%q}`, key, last)
					res := f.decideNothingConsumed(t, b.String(), catalog.InvalidJSON)
					if !bytes.Equal(res.Body, catalog.Body(catalog.InvalidJSON, catalog.Details{})) || res.Status != 400 {
						t.Errorf("answer = %d %s", res.Status, res.Body)
					}
				})
			}
		}
	}
}

// TestFieldVariantAlone: a top-level name that is a contract field to a
// case-insensitive reader but not to sendguard is invalid_json even alone:
// with "Phone" a Go sender reads the phone sendguard saw as missing, and a
// policy that did not require message_purpose would let "Message_Purpose":
// "marketing" through unread.
func TestFieldVariantAlone(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ field, key string }{
		{"phone", "Phone"}, {"phone", "PHONE"}, {"phone", `Ph\u006fne`},
		{"message", "meſſage"}, {"message", "Message"},
		{"instance_id", "Instance_ID"}, {"instance_id", "instanceId"},
		{"message_purpose", "Message_Purpose"}, {"message_purpose", "messagePurpose"}, {"message_purpose", "message-purpose"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			m := map[string]string{"instance_id": "shop", "phone": recipient, "message": "Your order shipped", "message_purpose": "transactional"}
			delete(m, tc.field)
			b, _ := json.Marshal(m)
			body := string(b[:len(b)-1]) + `,"` + tc.key + `":"x"}`
			f.decideNothingConsumed(t, body, catalog.InvalidJSON)
		})
	}
	// Names that only look alike stay other names.
	f.decideNothingConsumed(t, `{"instance_id":"shop","phone":"`+recipient+`","message":"Your order shipped","message_purpose":"transactional","phones":"x","message_id":"m-1","Meta":{"PHONE":1,"phone":2}}`, "")
}

// TestDuplicateKeysAtAnyDepth: a name twice in any object, however spelled,
// is invalid_json, in a small object and in one large enough for the map.
func TestDuplicateKeysAtAnyDepth(t *testing.T) {
	base := `"instance_id":"shop","phone":"` + recipient + `","message":"Your order shipped","message_purpose":"transactional"`
	var many strings.Builder
	for i := range 100 {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
	}
	tests := []struct {
		name, extra string
		want        catalog.Code
	}{
		{"nested object", `"meta":{"a":1,"a":2}`, catalog.InvalidJSON},
		{"nested escaped", `"meta":{"a":1,"\u0061":2}`, catalog.InvalidJSON},
		{"nested surrogate pair", `"meta":{"😀":1,"\ud83d\ude00":2}`, catalog.InvalidJSON},
		{"in an array", `"meta":[{"x":{"b":1}},{"b":1,"c":{"d":[],"d":{}}}]`, catalog.InvalidJSON},
		{"deep", `"a":{"b":{"c":{"d":{"e":{"f":1,"f":1}}}}}`, catalog.InvalidJSON},
		{"empty name twice", `"":1,"":2`, catalog.InvalidJSON},
		{"many names, repeat last", many.String() + `"k0":1`, catalog.InvalidJSON},
		{"many names, repeat escaped", many.String() + `"k\u0035\u0030":1`, catalog.InvalidJSON},
		{"many nested names", `"m":{` + many.String() + `"k99":0}`, catalog.InvalidJSON},
		{"many names, no repeat", many.String() + `"k100":1`, ""},
		{"same name in sibling objects", `"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":1}]`, ""},
		{"same name at two depths", `"x":{"x":{"x":1}}`, ""},
		{"names differing in case nested", `"meta":{"a":1,"A":2,"phone":3,"PHONE":4}`, ""},
	}
	f := newFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.decideNothingConsumed(t, "{"+base+","+tc.extra+"}", tc.want)
		})
	}
}

// TestBodyDifferentials: the other ways a body could read one way to
// sendguard and another way to the sender.
func TestBodyDifferentials(t *testing.T) {
	const msg = "Your order #2041 has been shipped."
	// obj builds a body with the four fields given as raw JSON values.
	obj := func(inst, ph, m, purpose string) string {
		return `{"instance_id":` + inst + `,"phone":` + ph + `,"message":` + m + `,"message_purpose":` + purpose + `}`
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	ok := obj(`"shop"`, q(recipient), q(msg), `"transactional"`)
	fields := func(kv ...string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < len(kv); i += 2 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%q", kv[i], kv[i+1])
		}
		return b.String() + "}"
	}
	tests := []struct {
		name   string
		body   string
		want   catalog.Code
		fields string // details.fields for validation_error
	}{
		// Framing.
		{"plain", ok, "", ""},
		{"white space around", " \t\r\n" + ok + "\n\t ", "", ""},
		{"BOM", "\ufeff" + ok, catalog.InvalidJSON, ""},
		{"BOM after space", " \ufeff" + ok, catalog.InvalidJSON, ""},
		{"second object", ok + `{"phone":"` + suppressed + `"}`, catalog.InvalidJSON, ""},
		{"second object after space", ok + "\n" + ok, catalog.InvalidJSON, ""},
		{"trailing garbage", ok + "x", catalog.InvalidJSON, ""},
		{"trailing NUL", ok + "\x00", catalog.InvalidJSON, ""},
		{"trailing comma", ok + ",", catalog.InvalidJSON, ""},
		{"trailing comma inside", ok[:len(ok)-1] + ",}", catalog.InvalidJSON, ""},
		{"NBSP after", ok + "\u00a0", catalog.InvalidJSON, ""},
		{"comment", ok + "//", catalog.InvalidJSON, ""},
		{"single quotes", `{'instance_id':'shop'}`, catalog.InvalidJSON, ""},
		{"NaN", ok[:len(ok)-1] + `,"x":NaN}`, catalog.InvalidJSON, ""},
		{"Infinity", ok[:len(ok)-1] + `,"x":-Infinity}`, catalog.InvalidJSON, ""},
		{"leading zero", ok[:len(ok)-1] + `,"x":01}`, catalog.InvalidJSON, ""},
		{"plus number", ok[:len(ok)-1] + `,"x":+1}`, catalog.InvalidJSON, ""},
		{"bare dot", ok[:len(ok)-1] + `,"x":1.}`, catalog.InvalidJSON, ""},
		{"hex", ok[:len(ok)-1] + `,"x":0x10}`, catalog.InvalidJSON, ""},
		{"numbers that are fine", ok[:len(ok)-1] + `,"x":[0,-0,1.5e-3,2E+10,-12.75,1e5]}`, "", ""},
		{"capitalised literal", ok[:len(ok)-1] + `,"x":True}`, catalog.InvalidJSON, ""},
		{"unquoted name", `{instance_id:"shop"}`, catalog.InvalidJSON, ""},

		// Wrong types are must_be_string (and a non-string purpose is no purpose).
		{"numbers", obj(`12`, `966501234567`, `1`, `"transactional"`), catalog.ValidationError, `{"instance_id":"must_be_string","phone":"must_be_string","message":"must_be_string"}`},
		{"booleans", obj(`true`, `false`, `true`, `"transactional"`), catalog.ValidationError, `{"instance_id":"must_be_string","phone":"must_be_string","message":"must_be_string"}`},
		{"arrays", obj(`["shop"]`, `["`+recipient+`"]`, `[]`, `"transactional"`), catalog.ValidationError, `{"instance_id":"must_be_string","phone":"must_be_string","message":"must_be_string"}`},
		{"objects", obj(`{"id":"shop"}`, `{}`, `{"text":"hi"}`, `"transactional"`), catalog.ValidationError, `{"instance_id":"must_be_string","phone":"must_be_string","message":"must_be_string"}`},
		{"nulls", obj(`null`, `null`, `null`, `"transactional"`), catalog.ValidationError, `{"instance_id":"required","phone":"required","message":"required"}`},
		{"purpose a number", obj(`"shop"`, q(recipient), q(msg), `1`), catalog.MessagePurposeRequired, ""},
		{"purpose an array", obj(`"shop"`, q(recipient), q(msg), `["transactional"]`), catalog.MessagePurposeRequired, ""},
		{"purpose an object", obj(`"shop"`, q(recipient), q(msg), `{"transactional":true}`), catalog.MessagePurposeRequired, ""},

		// Invalid UTF-8 in each field, and in a name.
		{"invalid UTF-8 in instance_id", obj("\"sh\xffop\"", q(recipient), q(msg), `"transactional"`), catalog.InvalidJSON, ""},
		{"invalid UTF-8 in phone", obj(`"shop"`, "\"+9665\xc0\x8001234567\"", q(msg), `"transactional"`), catalog.InvalidJSON, ""},
		{"invalid UTF-8 in message", obj(`"shop"`, q(recipient), "\"hi \xed\xa0\x80\"", `"transactional"`), catalog.InvalidJSON, ""},
		{"invalid UTF-8 in purpose", obj(`"shop"`, q(recipient), q(msg), "\"transactional\xfe\""), catalog.InvalidJSON, ""},
		{"invalid UTF-8 in a name", ok[:len(ok)-1] + ",\"x\xff\":1}", catalog.InvalidJSON, ""},
		{"truncated UTF-8", ok[:len(ok)-1] + ",\"x\":\"\xd8\"}", catalog.InvalidJSON, ""},

		// Escapes that are lone surrogates, in every field and in a name.
		{"lone high surrogate in instance_id", obj(`"shop\ud800"`, q(recipient), q(msg), `"transactional"`), catalog.InvalidJSON, ""},
		{"lone low surrogate in phone", obj(`"shop"`, `"+966501234567\udc00"`, q(msg), `"transactional"`), catalog.InvalidJSON, ""},
		{"lone surrogate in message", obj(`"shop"`, q(recipient), `"hi \ud800"`, `"transactional"`), catalog.InvalidJSON, ""},
		{"lone surrogate in purpose", obj(`"shop"`, q(recipient), q(msg), `"transactional\udbff"`), catalog.InvalidJSON, ""},
		{"high then letter", obj(`"shop"`, q(recipient), `"hi \ud800\u0041"`, `"transactional"`), catalog.InvalidJSON, ""},
		{"two highs", obj(`"shop"`, q(recipient), `"\ud800\ud800"`, `"transactional"`), catalog.InvalidJSON, ""},
		{"low then high", obj(`"shop"`, q(recipient), `"\udc00\ud800"`, `"transactional"`), catalog.InvalidJSON, ""},
		{"lone surrogate in a name", ok[:len(ok)-1] + `,"x\ud800":1}`, catalog.InvalidJSON, ""},
		{"lone surrogate nested", ok[:len(ok)-1] + `,"x":["\udfff"]}`, catalog.InvalidJSON, ""},
		{"surrogate pair is fine", obj(`"shop"`, q(recipient), `"Your order shipped \ud83d\udce6"`, `"transactional"`), "", ""},
		{"bad escape", obj(`"shop"`, q(recipient), `"hi \x"`, `"transactional"`), catalog.InvalidJSON, ""},
		{"short unicode escape", obj(`"shop"`, q(recipient), `"hi \u12"`, `"transactional"`), catalog.InvalidJSON, ""},

		// Control characters: raw ones are not JSON; escaped ones are read
		// exactly and refused where they do not belong.
		{"raw NUL in message", obj(`"shop"`, q(recipient), "\"hi\x00\"", `"transactional"`), catalog.InvalidJSON, ""},
		{"raw tab in message", obj(`"shop"`, q(recipient), "\"hi\tthere\"", `"transactional"`), catalog.InvalidJSON, ""},
		{"raw newline in phone", obj(`"shop"`, "\"+966501234567\n\"", q(msg), `"transactional"`), catalog.InvalidJSON, ""},
		{"NUL in instance_id", obj(`"shop\u0000"`, q(recipient), q(msg), `"transactional"`), catalog.InvalidInstance, ""},
		{"NUL before instance_id", obj(`"\u0000shop"`, q(recipient), q(msg), `"transactional"`), catalog.InvalidInstance, ""},
		{"control in instance_id", obj(`"sh\u001fop"`, q(recipient), q(msg), `"transactional"`), catalog.InvalidInstance, ""},
		{"ZWSP in instance_id", obj(`"shop\u200b"`, q(recipient), q(msg), `"transactional"`), catalog.InvalidInstance, ""},
		{"space in instance_id", obj(`"shop "`, q(recipient), q(msg), `"transactional"`), catalog.InvalidInstance, ""},
		{"NUL in phone", obj(`"shop"`, `"+966501234567\u0000"`, q(msg), `"transactional"`), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"NUL inside phone", obj(`"shop"`, `"+966501\u0000234567"`, q(msg), `"transactional"`), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"escaped tab in phone", obj(`"shop"`, `"+966\t501234567"`, q(msg), `"transactional"`), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"NUL in purpose", obj(`"shop"`, q(recipient), q(msg), `"transactional\u0000"`), catalog.MessagePurposeRequired, ""},
		{"NUL before purpose", obj(`"shop"`, q(recipient), q(msg), `"\u0000transactional"`), catalog.MessagePurposeRequired, ""},
		{"control in purpose", obj(`"shop"`, q(recipient), q(msg), `"trans\u0008actional"`), catalog.MessagePurposeRequired, ""},
		{"ZWJ in purpose", obj(`"shop"`, q(recipient), q(msg), `"trans\u200dactional"`), catalog.MessagePurposeRequired, ""},
		{"escaped newline in message is text", obj(`"shop"`, q(recipient), `"Your order\nhas shipped"`, `"transactional"`), "", ""},

		// The phone must be a plain phone string.
		{"LRM in phone", fields("instance_id", "shop", "phone", "\u200e"+recipient, "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"RLM in phone", fields("instance_id", "shop", "phone", recipient+"\u200f", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"RLO in phone", fields("instance_id", "shop", "phone", "\u202e+966501234567", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"LRI in phone", fields("instance_id", "shop", "phone", "\u2066+966501234567\u2069", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"ZWSP in phone", fields("instance_id", "shop", "phone", "+966\u200b501234567", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"ZWNJ in phone", fields("instance_id", "shop", "phone", "+966\u200c501234567", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"WJ in phone", fields("instance_id", "shop", "phone", "+966\u2060501234567", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"BOM in phone", fields("instance_id", "shop", "phone", "\ufeff+966501234567", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{";ext=", fields("instance_id", "shop", "phone", recipient+";ext=123", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"ext.", fields("instance_id", "shop", "phone", recipient+" ext. 123", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"x123", fields("instance_id", "shop", "phone", recipient+"x123", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"tel:", fields("instance_id", "shop", "phone", "tel:"+recipient, "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"tel: suppressed", fields("instance_id", "shop", "phone", "tel:"+suppressed, "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"vanity", fields("instance_id", "shop", "phone", "+1-800-FLOWERS", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"letters", fields("instance_id", "shop", "phone", "+9665O1234567", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"mixed digit scripts", fields("instance_id", "shop", "phone", "+966 ٥٠١٢٣٤٥٦٧", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"full-width digits", fields("instance_id", "shop", "phone", "+９６６５０１２３４５６７", "message", msg, "message_purpose", "transactional"), "", ""},
		{"full-width suppressed", fields("instance_id", "shop", "phone", "+"+strings.Map(func(r rune) rune { return r - '0' + '０' }, "966500000000"), "message", msg, "message_purpose", "transactional"), catalog.RecipientSuppressed, ""},
		{"Arabic-Indic digits", fields("instance_id", "shop", "phone", "+٩٦٦ ٥٠ ١٢٣ ٤٥٦٧", "message", msg, "message_purpose", "transactional"), "", ""},
		{"separators", fields("instance_id", "shop", "phone", "+966 (50) 123-45.67", "message", msg, "message_purpose", "transactional"), "", ""},

		// Strings that show nothing are empty.
		{"message of ZWSP", fields("instance_id", "shop", "phone", recipient, "message", "\u200b\u200b", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of marks", fields("instance_id", "shop", "phone", recipient, "message", "\u200d\u200e\u200f\u202a\u202e\u2066\u2069\u2060\ufeff\u180e", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of combining marks", fields("instance_id", "shop", "phone", recipient, "message", "\u0301\u0651\u093c\u20dd", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of variation selectors", fields("instance_id", "shop", "phone", recipient, "message", "\ufe0f\ufe0e\U000e0100", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of Hangul fillers", fields("instance_id", "shop", "phone", recipient, "message", "\u115f\u1160\u3164\uffa0", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of braille blanks", fields("instance_id", "shop", "phone", recipient, "message", "\u2800\u2800", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of wide spaces", fields("instance_id", "shop", "phone", recipient, "message", "\u3000\u00a0\u2003\u2028\u0085", "message_purpose", "transactional"), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of NULs", obj(`"shop"`, q(recipient), `"\u0000\u0001\u007f"`, `"transactional"`), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"message of escaped ZWSP", obj(`"shop"`, q(recipient), `"\u200B \u200C"`, `"transactional"`), catalog.ValidationError, `{"message":"must_not_be_empty"}`},
		{"phone of ZWSP", fields("instance_id", "shop", "phone", "\u200b", "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"phone":"must_not_be_empty"}`},
		{"instance_id of marks", fields("instance_id", "\u200e\ufeff", "phone", recipient, "message", msg, "message_purpose", "transactional"), catalog.ValidationError, `{"instance_id":"must_not_be_empty"}`},
		{"all three invisible", fields("instance_id", "\u3164", "phone", "\u2800", "message", "\u034f", "message_purpose", "transactional"), catalog.ValidationError, `{"instance_id":"must_not_be_empty","phone":"must_not_be_empty","message":"must_not_be_empty"}`},
		{"emoji with a joiner is a message", fields("instance_id", "shop", "phone", recipient, "message", "👩\u200d💻", "message_purpose", "transactional"), "", ""},
		{"Arabic with marks is a message", fields("instance_id", "shop", "phone", recipient, "message", "طَلَبُكَ رقم 1042 تم شحنه", "message_purpose", "transactional"), "", ""},
		{"Hindi is a message", fields("instance_id", "shop", "phone", recipient, "message", "आपका ऑर्डर भेज दिया गया है", "message_purpose", "transactional"), "", ""},
		{"Turkish is a message", fields("instance_id", "shop", "phone", recipient, "message", "Siparişiniz İstanbul'dan gönderildi, ı", "message_purpose", "transactional"), "", ""},
	}
	f := newFixture(t) // about twenty allowed sends: well inside the daily 100
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := f.decideNothingConsumed(t, tc.body, tc.want)
			if tc.want == catalog.ValidationError {
				var got struct {
					Details struct {
						Fields json.RawMessage `json:"fields"`
					} `json:"details"`
				}
				if err := json.Unmarshal(res.Body, &got); err != nil || string(got.Details.Fields) != tc.fields {
					t.Errorf("Decide(%q) details.fields = %s, want %s", tc.body, got.Details.Fields, tc.fields)
				}
			}
			if tc.want == "" && res.Phone != recipient {
				t.Errorf("Decide(%q).Phone = %q, want %q", tc.body, res.Phone, recipient)
			}
		})
	}
}

// TestAllowedResultCarriesE164: the number a sender is told to use is the
// one that was checked, whatever spelling the client sent.
func TestAllowedResultCarriesE164(t *testing.T) {
	f := newFixture(t)
	for _, ph := range []string{"+966501234567", "00966 50 123 4567", "+٩٦٦٥٠١٢٣٤٥٦٧", "+966 (50) 123-4567"} {
		res := f.decide(t, keyDemo, send("shop", ph, "Your order shipped", "transactional"))
		if !res.Allowed || res.Phone != recipient {
			t.Errorf("Decide(phone %q) = allowed %v, Phone %q; want allowed with %q", ph, res.Allowed, res.Phone, recipient)
		}
	}
}

func TestLooseEqual(t *testing.T) {
	tests := []struct {
		key, name string
		want      bool
	}{
		{"phone", "phone", true},
		{"PHONE", "phone", true},
		{"meſſage", "message", true},
		{"\u212aey", "key", true}, // Kelvin sign
		{"message-purpose", "message_purpose", true},
		{"MessagePurpose", "message_purpose", true},
		{"__phone__", "phone", true},
		{"phones", "phone", false},
		{"phon", "phone", false},
		{"ph one", "phone", false},
		{"phoné", "phone", false},
		{"", "phone", false},
		{"_-_", "phone", false},
		{"İnstance_id", "instance_id", false}, // U+0130 does not simple-fold to i
	}
	for _, tc := range tests {
		if got := looseEqual([]byte(tc.key), tc.name); got != tc.want {
			t.Errorf("looseEqual(%q, %q) = %v, want %v", tc.key, tc.name, got, tc.want)
		}
		if tc.want && !strings.EqualFold(strings.NewReplacer("_", "", "-", "").Replace(tc.key), strings.ReplaceAll(tc.name, "_", "")) {
			t.Errorf("looseEqual(%q, %q) is true but strings.EqualFold disagrees", tc.key, tc.name)
		}
	}
}

// goRead is what a Go sender decoding the body with encoding/json reads.
type goRead struct {
	InstanceID     string `json:"instance_id"`
	Phone          string `json:"phone"`
	Message        string `json:"message"`
	MessagePurpose any    `json:"message_purpose"`
}

// sameAsEncodingJSON is the core property of the fix: a body that passes
// sendguard's parse is read by encoding/json, into a struct (case-insensitive
// names, last one wins) and into a map (exact names, last one wins, as
// Python and JavaScript read), as the same instance_id, phone, message and
// message_purpose sendguard read.
// It reports a difference with t.Errorf, so that it can run on many
// goroutines.
func sameAsEncodingJSON(t *testing.T, d *Decider, body []byte) (passed bool) {
	t.Helper()
	req, code, _ := d.parseBody(body, false)
	if code != "" {
		return false
	}
	var st goRead
	if err := json.Unmarshal(body, &st); err != nil {
		t.Errorf("parseBody(%q) passed, but encoding/json refuses it: %v", body, err)
		return true
	}
	if st.InstanceID != req.instanceID || st.Phone != req.phone || st.Message != req.message {
		t.Errorf("parseBody(%q) read (%q, %q, %q), encoding/json into a struct (%q, %q, %q)",
			body, req.instanceID, req.phone, req.message, st.InstanceID, st.Phone, st.Message)
	}
	p, isString := st.MessagePurpose.(string)
	if isString != req.purposePresent || p != req.purpose {
		t.Errorf("parseBody(%q) read purpose %q (present %v), encoding/json %#v", body, req.purpose, req.purposePresent, st.MessagePurpose)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("parseBody(%q) passed, but encoding/json refuses it as a map: %v", body, err)
		return true
	}
	for name, want := range map[string]string{"instance_id": req.instanceID, "phone": req.phone, "message": req.message} {
		if m[name] != want {
			t.Errorf("parseBody(%q) read %s %q, encoding/json into a map %#v", body, name, want, m[name])
		}
	}
	if p, isString := m["message_purpose"].(string); isString != req.purposePresent || p != req.purpose {
		t.Errorf("parseBody(%q) read purpose %q, encoding/json into a map %#v", body, req.purpose, m["message_purpose"])
	}
	return true
}

var parseSeeds = []string{
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","message_purpose":"support"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","phone":"+966500000000","message_purpose":"transactional"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","PHONE":"+966500000000","message_purpose":"transactional"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","ph\u006fne":"+966500000000"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","meſſage":"YOU HAVE WON"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","message_purpose":"support","Message_Purpose":"marketing"}`,
	`{"instance_id":"shop","INSTANCE_ID":"theirs","phone":"+966501234567","message":"hi"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","m":{"a":1,"a":2}}`,
	"\ufeff{\"instance_id\":\"shop\",\"phone\":\"+966501234567\",\"message\":\"hi\"}",
	`{"instance_id":"shop","phone":"+966501234567","message":"hi"}{"phone":"+966500000000"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi"} x`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi"}  ` + "\n",
	`{"instance_id":12,"phone":966501234567,"message":true,"message_purpose":["x"]}`,
	"{\"instance_id\":\"shop\",\"phone\":\"+966501234567\",\"message\":\"h\xffi\"}",
	`{"instance_id":"shop","phone":"+966501234567","message":"hi \ud800"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi \ud83d\ude00 \u00e9"}`,
	`{"instance_id":"shop\u0000","phone":"+966501234567\u0000","message":"hi","message_purpose":"support\u0000"}`,
	`{"instance_id":"shop","phone":"\u200e+966501234567","message":"hi"}`,
	`{"instance_id":"shop","phone":"+966501234567;ext=123","message":"hi"}`,
	`{"instance_id":"shop","phone":"tel:+966501234567","message":"hi"}`,
	`{"instance_id":"shop","phone":"+1-800-FLOWERS","message":"hi"}`,
	`{"instance_id":"shop","phone":"+９６６５０１２３４５６７","message":"hi"}`,
	`{"instance_id":"shop","phone":"+٩٦٦٥٠١٢٣٤٥٦٧","message":"طلبك رقم 1042 تم شحنه"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"\u200b\u2060\ufeff"}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"\\\"\/\b\f\n\r\t","message_purpose":" Support "}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","x":[1,-0.5e+3,true,false,null,{},[]]}`,
	`{"instance_id":"shop","phone":"+966501234567","message":"hi","x":01}`,
	`{"instance_id":"shop","phone":"0","message":"\u0000"}`,
	`[[[{}]]]`,
	``,
}

// FuzzParseBody: sendguard's parse never panics, and a body it passes is
// read exactly as encoding/json reads it. Its seeds run with go test.
func FuzzParseBody(f *testing.F) {
	fx := newFixture(f)
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsEncodingJSON(t, fx.d, b)
	})
}

// TestParseBodyMatchesEncodingJSON runs the property on many random bodies
// built to hit the differentials (repeated and case-folded names, escapes,
// surrogates, invisible characters, odd numbers, trailing data), from
// several goroutines at once, and checks that enough of them pass the parse
// for the property to say something.
func TestParseBodyMatchesEncodingJSON(t *testing.T) {
	f := newFixture(t)
	const workers, perWorker = 4, 1500
	var mu sync.Mutex
	passed := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 8))
			n := 0
			for range perWorker {
				if t.Failed() {
					return
				}
				if sameAsEncodingJSON(t, f.d, randomBody(rng)) {
					n++
				}
			}
			mu.Lock()
			passed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d of %d random bodies passed the parse", passed, workers*perWorker)
	if total := workers * perWorker; passed < total/10 {
		t.Errorf("only %d of %d random bodies passed the parse: the property was barely tested", passed, total)
	}
}

var (
	randNames = []string{"instance_id", "phone", "message", "message_purpose",
		"PHONE", "Phone", `ph\u006fne`, `\u0070\u0068\u006f\u006e\u0065`, "meſſage", "Message", "MESSAGE_PURPOSE", "messagePurpose", "instance-id",
		"x", "meta", "phones", "", `\u0000`, "😀", `\ud83d\ude00`, `\ud800`, "\u212a"}
	randStrings = []string{"shop", "theirs", "+966501234567", "+966500000000", "00966 50 123 4567", "+٩٦٦٥٠١٢٣٤٥٦٧", "+９６６５０１２３４５６７",
		"+966501234567;ext=1", "tel:+966501234567", "\u200e+966501234567", "Your order shipped", "YOU HAVE WON", "طلبك رقم 1042 تم شحنه",
		"आपका ऑर्डर", "İstanbul ı", "👩\u200d💻", "\u200b", "\u3164", " ", "transactional", " Support ", "marketing",
		`\u0041\u00e9\ud83d\ude00`, `\ud800`, `\udc00x`, `\n\t\"\\\/`, `\u0000`, "\u00a0", `\u200b`}
	randOthers = []string{"1", "-0", "1.5e3", "01", "1.", "-", "true", "false", "null", "nul", "[]", "{}", `[1,"a",{"b":null}]`, `{"a":1,"a":2}`, `{"a":{"A":1}}`, "NaN"}
)

// randomBody builds a JSON-ish object from the pools above, now and then
// broken on purpose.
func randomBody(rng *rand.Rand) []byte {
	var b bytes.Buffer
	ws := func() {
		switch rng.IntN(200) {
		case 0:
			b.WriteString("\u00a0")
		case 1, 2, 3, 4, 5, 6, 7, 8, 9, 10:
			b.WriteString([]string{" ", "\n", "\t", "\r\n "}[rng.IntN(4)])
		}
	}
	if rng.IntN(40) == 0 {
		b.WriteString("\ufeff")
	}
	ws()
	b.WriteByte('{')
	// Mostly the four fields with sensible values, so that many bodies
	// pass, plus random extra members.
	names := []string{"instance_id", "phone", "message", "message_purpose"}
	vals := []string{`"shop"`, `"+966501234567"`, `"hi"`, `"transactional"`}
	n := rng.IntN(3)
	for range n {
		names = append(names, randNames[rng.IntN(len(randNames))])
		switch rng.IntN(3) {
		case 0:
			vals = append(vals, randOthers[rng.IntN(len(randOthers))])
		default:
			vals = append(vals, `"`+randStrings[rng.IntN(len(randStrings))]+`"`)
		}
	}
	for i := range 4 {
		if rng.IntN(8) == 0 {
			vals[i] = `"` + randStrings[rng.IntN(len(randStrings))] + `"`
		}
	}
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i]; vals[i], vals[j] = vals[j], vals[i] })
	for i := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		ws()
		b.WriteString(`"` + names[i] + `"`)
		ws()
		b.WriteByte(':')
		ws()
		b.WriteString(vals[i])
		ws()
	}
	b.WriteByte('}')
	ws()
	switch rng.IntN(30) {
	case 0:
		b.WriteString(`{"phone":"+966500000000"}`)
	case 1:
		b.WriteString("x")
	}
	out := b.Bytes()
	if rng.IntN(30) == 0 && len(out) > 2 {
		out[rng.IntN(len(out))] = []byte{0xff, 0x00, '"', '\\', 0xc0}[rng.IntN(5)]
	}
	return out
}

// BenchmarkParseBody measures steps 2 and 3 alone on the allow path's body.
func BenchmarkParseBody(b *testing.B) {
	f := newFixture(b)
	body := send("shop", recipient, "Your order #2041 has been shipped.", "transactional")
	b.ReportAllocs()
	for b.Loop() {
		if _, code, _ := f.d.parseBody(body, false); code != "" {
			b.Fatal(code)
		}
	}
}

func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// BenchmarkParseBodyManyNames is a hostile body: a 64 KiB object of
// distinct short names, which the scan checks for repeats through a map in
// linear time rather than comparing every pair.
func BenchmarkParseBodyManyNames(b *testing.B) {
	f := newFixture(b)
	var body bytes.Buffer
	body.WriteString(`{"instance_id":"shop","phone":"+966501234567","message":"hi"`)
	for i := 0; body.Len() < 64<<10-32; i++ {
		fmt.Fprintf(&body, `,"%x":0`, i)
	}
	body.WriteString("}")
	b.ReportAllocs()
	for b.Loop() {
		if _, code, _ := f.d.parseBody(body.Bytes(), false); code != "" {
			b.Fatal(code)
		}
	}
}

// TestRequestHeader: Request.Header reads Headers when it is set, else the
// last entry of HeaderList of the name (as a map built from the list
// would hold), and "" for a header that is not there; from 16 goroutines
// at once, with multilingual values.
func TestRequestHeader(t *testing.T) {
	list := []Header{
		{Key: "x-signature", Value: "sha256=مرحبا"},
		{Key: "content-type", Value: "application/json"},
		{Key: "x-signature", Value: "sha256=नमस्ते İı 👨‍👩‍👧 e\u0301"},
		{Key: "", Value: "no name"},
	}
	cases := []struct {
		name string
		r    Request
		key  string
		want string
	}{
		{"list, last of two wins", Request{HeaderList: list}, "x-signature", "sha256=नमस्ते İı 👨‍👩‍👧 e\u0301"},
		{"list, one", Request{HeaderList: list}, "content-type", "application/json"},
		{"list, absent", Request{HeaderList: list}, "authorization", ""},
		{"list, empty name", Request{HeaderList: list}, "", "no name"},
		{"map first", Request{Headers: map[string]string{"x-signature": "from the map"}, HeaderList: list}, "x-signature", "from the map"},
		{"empty map, not the list", Request{Headers: map[string]string{}, HeaderList: list}, "content-type", ""},
		{"none", Request{}, "x-signature", ""},
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for _, tc := range cases {
				if got := tc.r.Header(tc.key); got != tc.want {
					t.Errorf("%s: Header(%q) = %q, want %q", tc.name, tc.key, got, tc.want)
				}
			}
		})
	}
	wg.Wait()
}
