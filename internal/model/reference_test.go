package model

import "github.com/sendguard/sendguard/internal/optout"

// refPredict is Predict as it was before its fast path (commit f4bfdd0):
// the text normalised and copied, prepared, every feature listed by
// extractNeg, and each one's row of k weights summed in turn, character
// n-grams apart when CharWeight is above 0. TestFastPathMatchesReference
// holds Predict to it, bit for bit.
func (m *Model) refPredict(text string, dst []float64) []float64 {
	n := optout.AppendNormalized(nil, text)
	p := m.Spec.prepareNormalized(nil, string(n))
	feats, nchar := m.Spec.extractNeg(nil, p, m.mk, nil)
	var acc, cacc [MaxClasses]int64
	k := m.k
	for i, b := range feats {
		row := m.refRow(b)
		if i < nchar && m.Spec.CharWeight > 0 {
			for c, v := range row {
				cacc[c] += int64(v)
			}
			continue
		}
		for c, v := range row {
			acc[c] += int64(v)
		}
	}
	var logits [MaxClasses]float64
	norm := m.scale * m.Spec.norm(len(feats))
	for c := range k {
		logits[c] = m.bias[c] + float64(acc[c])*norm + float64(cacc[c])*norm*m.Spec.CharWeight
	}
	return softmax(dst, logits[:k])
}

// refRow is the k weights of bucket b.
func (m *Model) refRow(b uint32) []int16 { return m.w[int(b)*m.k : int(b)*m.k+m.k] }
