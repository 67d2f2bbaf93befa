package model

import (
	"slices"
	"unicode/utf8"
)

// This file is Predict's hot path: the sums score takes over the weight
// rows of a message's features, computed without an intermediate list of
// spans and with each rune decoded once. It must give what extractNeg and
// the plain sum give, bit for bit (TestFastPathMatchesReference, over the
// corpus and odd text from many goroutines); extractNeg stays the
// definition, which training and Explain use.

// extractFast appends to dst the bucket of every feature of the prepared
// text p, as extractNeg(dst, p, mk, nil) does and in its order, character
// n-grams first: nchar is how many of the features appended are those.
// Only the character n-grams have a path of their own (each rune decoded
// once, no closure); the words go through appendWords, as in extractNeg.
// offs is scratch for rune offsets; it returns it for reuse.
func (s *Spec) extractFast(dst []uint32, offs []int32, p []byte, mk *marks) (_ []uint32, _ []int32, nchar int) {
	start := len(dst)
	shift := uint(32 - s.BucketBits)
	cmin, cmax := s.CharMin, s.CharMax
	// Room for every feature at once: a fresh scratch (the pool's, dropped
	// under the race detector) then costs one allocation, not a doubling
	// series. Words are at most half the bytes, each at most 4 features,
	// and the concept features at most mk.most.
	most := 0
	if mk != nil {
		most = mk.most
	}
	var scb scope
	sc := s.scopeOf(&scb, p, mk)
	if sc != nil {
		for _, r := range sc.r[:sc.n] {
			most += int(r[1]-r[0]) * cmax // the n-grams starting in a word near a negator, again
		}
	}
	dst = slices.Grow(dst, len(p)*cmax+2*len(p)+1+most)
	charSeeds := [2]uint32{seedChar, seedCharNeg}
	ascii := true
	for _, c := range p {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		for i := range p {
			end := min(len(p), i+cmax)
			for _, h := range charSeeds[:sc.seeds(i)] {
				for j := i; j < end; j++ {
					h = (h ^ uint32(p[j])) * fnvPrime
					if n := j - i + 1; n >= cmin && !(n == 1 && p[i] == ' ') {
						dst = append(dst, mix(h)>>shift)
					}
				}
			}
		}
	} else {
		// The offset of every rune, as utf8.DecodeRune steps (an invalid
		// byte is a rune of one byte), and len(p) at the end.
		offs = slices.Grow(offs[:0], len(p)+1)
		for i := 0; i < len(p); {
			offs = append(offs, int32(i))
			if p[i] < utf8.RuneSelf {
				i++
				continue
			}
			_, sz := utf8.DecodeRune(p[i:])
			i += sz
		}
		runes := len(offs)
		offs = append(offs, int32(len(p)))
		for a := range runes {
			end := min(runes, a+cmax)
			for _, h := range charSeeds[:sc.seeds(int(offs[a]))] {
				for b := a; b < end; b++ {
					for _, c := range p[offs[b]:offs[b+1]] {
						h = (h ^ uint32(c)) * fnvPrime
					}
					if n := b - a + 1; n >= cmin && !(n == 1 && p[offs[a]] == ' ') {
						dst = append(dst, mix(h)>>shift)
					}
				}
			}
		}
	}
	nchar = len(dst) - start
	if s.Words == 0 {
		return dst, offs, nchar
	}
	return s.appendWords(dst, p, mk, nil), offs, nchar
}

// seeds is how many seeds the character n-grams starting at byte i take:
// 2 in a word of sc (the plain and the negated, Spec.NegChars), else 1.
func (sc *scope) seeds(i int) int {
	if sc.has(i) {
		return 2
	}
	return 1
}

// sumRows adds the weight rows of buckets to acc: w has rows of k int16.
// The shipped tasks' k (3 and 5) have loops of their own that keep the
// sums in registers. Rows are not padded to a power of two: a padded
// table is larger, and on a busy machine the rows a message touches stay
// in cache less often (half as fast, measured on the corpus).
func sumRows(acc *[MaxClasses]int64, w []int16, k int, buckets []uint32) {
	switch k {
	case 3:
		var a0, a1, a2 int64
		for _, b := range buckets {
			r := (*[3]int16)(w[int(b)*3:])
			a0 += int64(r[0])
			a1 += int64(r[1])
			a2 += int64(r[2])
		}
		acc[0] += a0
		acc[1] += a1
		acc[2] += a2
	case 5:
		var a0, a1, a2, a3, a4 int64
		for _, b := range buckets {
			r := (*[5]int16)(w[int(b)*5:])
			a0 += int64(r[0])
			a1 += int64(r[1])
			a2 += int64(r[2])
			a3 += int64(r[3])
			a4 += int64(r[4])
		}
		acc[0] += a0
		acc[1] += a1
		acc[2] += a2
		acc[3] += a3
		acc[4] += a4
	default:
		for _, b := range buckets {
			for c, v := range w[int(b)*k : int(b)*k+k] {
				acc[c] += int64(v)
			}
		}
	}
}
