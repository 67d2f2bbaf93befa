package model

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system CPU time: on a machine shared
// with other work, CPU time per operation says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The shipped models on messages of typical length: an inbound reply, and
// an outbound message of about 160 characters.
func benchPredict(b *testing.B, task, msg string) {
	m, err := Embedded(task)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]float64, 0, MaxClasses)
	b.ReportAllocs()
	start := cpuTime()
	n := 0
	for b.Loop() {
		m.Predict(msg, buf[:0])
		n++
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(n), "cpu-ns/op")
}

func BenchmarkPredictInbound(b *testing.B) {
	benchPredict(b, Inbound, "Please take my number off your list, I don't want these messages")
}

func BenchmarkPredictInboundArabic(b *testing.B) {
	benchPredict(b, Inbound, "لو سمحت وقفوا الرسايل ما ابغى اشتراك")
}

func BenchmarkPredictOutbound(b *testing.B) {
	benchPredict(b, Outbound, "Your order #4412 has shipped! As a thank-you, reply YES to get 20% off your next purchase this weekend only.")
}

func BenchmarkPredictOutboundHindi(b *testing.B) {
	benchPredict(b, Outbound, "आपका ऑर्डर 4412 भेज दिया गया है। अगली खरीद पर 20% छूट पाने के लिए YES लिखें, केवल इस सप्ताह।")
}

func BenchmarkLoadEmbedded(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Embedded(Outbound); err != nil {
			b.Fatal(err)
		}
	}
}
