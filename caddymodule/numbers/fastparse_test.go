package numbers

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// agreesWithParse fails t if parseE164 answers for input and Parse (from
// any default region) answers anything else.
func agreesWithParse(t *testing.T, input string) (fast bool) {
	t.Helper()
	got, ok := parseE164(input)
	if !ok {
		return false
	}
	for _, region := range []string{"", "US", "FR", "DE", "AR"} {
		want, err := phonenumbers.Parse(input, region)
		if err != nil {
			t.Fatalf("%q: parseE164 gave %v, Parse (%q) refused it: %v", input, got, region, err)
		}
		if got.String() != want.String() {
			t.Fatalf("%q: parseE164 gave %v, Parse (%q) %v", input, got, region, want)
		}
	}
	return true
}

// TestParseE164AgreesWithParse: for every country calling code, its
// regions' example numbers of every type, the same with the national
// prefix typed after the country code, and random digits of every
// length, parseE164 answers exactly what Parse answers, or leaves the
// input to Parse. Most of the example numbers take the fast path.
func TestParseE164AgreesWithParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs []string
	for region := range phonenumbers.GetSupportedRegions() {
		cc := strconv.Itoa(phonenumbers.GetCountryCodeForRegion(region))
		ndd := phonenumbers.GetNddPrefixForRegion(region, true)
		for typ := phonenumbers.FIXED_LINE; typ <= phonenumbers.VOICEMAIL; typ++ {
			n := phonenumbers.GetExampleNumberForType(region, typ)
			if n == nil {
				continue
			}
			e164 := phonenumbers.Format(n, phonenumbers.E164)
			inputs = append(inputs, e164, "+"+cc+ndd+e164[1+len(cc):], "+"+cc+"0"+e164[1+len(cc):])
		}
	}
	examples := len(inputs)
	for cc := 1; cc < 1000; cc++ {
		for n := 0; n <= 18; n++ {
			var b strings.Builder
			b.WriteString("+" + strconv.Itoa(cc))
			var spaced strings.Builder
			spaced.WriteString(b.String())
			for range n {
				d := byte('0' + rng.IntN(10))
				b.WriteByte(d)
				if r := rng.IntN(6); r < 2 {
					spaced.WriteByte(" -"[r])
				}
				spaced.WriteByte(d)
			}
			inputs = append(inputs, b.String(), spaced.String())
		}
	}
	inputs = append(inputs, "+", "+1", "+12", "+0123456789", "+33 612345678", "+3361234567x", "33612345678", "+٣٣٦١٢٣٤٥٦٧٨",
		"+1 415 555 2671", "+1-415-555-2671", "+33 6 12 34 56 78", "+33-6-12-34-56-78-", "+ 33612345678", "+44 20 7946 0958")
	fast := 0
	for i, in := range inputs {
		if agreesWithParse(t, in) && i < examples {
			fast++
		}
	}
	if fast < examples/2 {
		t.Errorf("the fast path took %d of %d example numbers, want most", fast, examples)
	}
	t.Logf("fast path: %d of %d example numbers (with and without a national prefix)", fast, examples)
}

// FuzzParseE164: whatever parseE164 answers, Parse answers the same.
func FuzzParseE164(f *testing.F) {
	for _, s := range []string{"+33612345678", "+14155552671", "+7 8800", "+5491123456789", "+390612345678", "+80012345678", "+00",
		"+1 415 555 2671", "+1-415-555-2671", "+33 6 12 34 56 78 -", "+4 4-20 7946 0958", "+1 -- 415 5552671 ", "+1  2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		agreesWithParse(t, s)
	})
}
