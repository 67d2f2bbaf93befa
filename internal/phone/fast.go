package phone

import (
	"regexp"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// nationalPrefixes maps each calling code to the anchored national-prefix
// patterns of its regions (the ones phonenumbers.Parse strips with).
var nationalPrefixes = sync.OnceValue(func() map[int][]*regexp.Regexp {
	out := map[int][]*regexp.Regexp{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil // the fast path is then never taken
	}
	for _, md := range coll.GetMetadata() {
		p := md.GetNationalPrefixForParsing()
		if p == "" {
			p = md.GetNationalPrefix()
		}
		if p == "" {
			continue
		}
		re, err := regexp.Compile("^(?:" + p + ")")
		if err != nil {
			return nil
		}
		cc := int(md.GetCountryCode())
		out[cc] = append(out[cc], re)
	}
	return out
})

// fastE164 answers s when it is already in E.164 form ("+" and digits,
// as stored suppressions and most imports are) without phonenumbers.Parse,
// whose extension and national-prefix handling (regular expressions) cost
// most of a parse. It decides only where Parse would build the very same
// number: a geographic calling code, a national number that does not
// start with 0 (Italian leading zeros) or with anything its region's
// national-prefix pattern matches (Parse might strip it), and a number
// IsValidNumber accepts. Anything else is left to parse (decided false).
func fastE164(s string) (e164 string, decided bool) {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' {
		return "", false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	prefixes := nationalPrefixes()
	if prefixes == nil {
		return "", false
	}
	digits := s[1:]
	cc, ccLen := 0, 0
	for i := 1; i <= 3 && i < len(digits); i++ {
		c, _ := strconv.Atoi(digits[:i])
		if r := phonenumbers.GetRegionCodeForCountryCode(c); r != phonenumbers.UNKNOWN_REGION {
			if r == "001" { // non-geographic: leave to Parse
				return "", false
			}
			cc, ccLen = c, i
			break
		}
	}
	if cc == 0 || digits[0] == '0' {
		return "", false
	}
	nsn := digits[ccLen:]
	if nsn[0] == '0' {
		return "", false
	}
	for _, re := range prefixes[cc] {
		if re.MatchString(nsn) {
			return "", false
		}
	}
	n, err := strconv.ParseUint(nsn, 10, 64)
	if err != nil {
		return "", false
	}
	cc32 := int32(cc)
	num := &phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &n}
	if !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return s, true
}
