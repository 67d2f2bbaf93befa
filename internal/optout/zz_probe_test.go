package optout

import (
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	d := New(DefaultLists())
	for _, s := range []string{"ABONELİKTEN ÇIK", "ABONELIKTEN ÇIK", "abonelikten çık", "IPTAL", "İPTAL", "DESABONNER", "ARRÊT", "STOP STOP", "stop stop stop",
		"No, stop sending me messages", "No. Stop texting me", "no stop", "Why did you stop sending updates?", "can we start again tomorrow?", "yes please",
		"I want to end my subscription to the gym plan?", "how do I unsubscribe?", "لا تتوقف", "don't stop sending", "never stop texting me lol",
		"٣ stop", "stop ١", "S T O P", "s.t.o.p", "Stop!!!🛑", "🛑", "STOP\u200d", "\ufeffSTOP", "remove me from the photo please", "Stop sending me the wrong sizes",
		"I said stop", "STOP sending me this garbage", "unsubscribe.", "stop it", "stop now please", "please stop it now", "i want to stop", "Halt",
		"كيف الغاء الاشتراك في الجيم", "ستوب", "ﺗﻮﻗﻒ", "ئيقاف", "stop, please!", "Parar!!", "Pare", "para", "stop pls", "Stopp!", "unsubscribe me please", "dont stop"} {
		t.Logf("%-50q %v", s, d.Classify(s))
	}
	for _, n := range []int{100, 1000, 4000} {
		s := strings.Repeat("please ", n) + "hello"
		st := time.Now()
		d.Classify(s)
		t.Logf("%d words fillers: %v", n, time.Since(st))
		s = strings.Repeat("word ", n)
		st = time.Now()
		d.Classify(s)
		t.Logf("%d words plain: %v", n, time.Since(st))
	}
}
