package numbers

import (
	"regexp"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// parseE164 is phonenumbers.Parse of an input that is "+" and digits
// (spaces and hyphens allowed), as most clients send, without its regular
// expressions: for such an input Parse only finds the country code (the
// first of 1 to 3 digits that is one), maybe strips a national prefix
// after it, and notes leading zeros. Parse was most of an update's cost
// (issue 13). ok is false — the caller asks Parse — for any other input,
// and whenever the region's national prefix could match the start of
// the national number (Parse would strip it, or transform the number):
// what is returned is then always what Parse returns
// (TestParseE164AgreesWithParse, FuzzParseE164).
func parseE164(input string) (num *phonenumbers.PhoneNumber, ok bool) {
	// "+", a country code that does not start with 0, and at most 17
	// digits (libphonenumber's longest national number) after it; spaces
	// and hyphens between the digits are dropped, as Parse drops them.
	// Parse refuses an input over MAX_INPUT_STRING_LENGTH bytes whatever
	// it holds (FuzzParseE164 found 17 digits spread by spaces over 1,000;
	// Normalize never passes one over MaxInputLength).
	if len(input) < 4 || len(input) > phonenumbers.MAX_INPUT_STRING_LENGTH || input[0] != '+' || input[1] < '1' || input[1] > '9' {
		return nil, false
	}
	var digits [1 + 3 + 17]byte
	n := 0
	for i := 0; i < len(input); i++ {
		switch c := input[i]; {
		case i == 0:
			digits[0], n = '+', 1
		case c >= '0' && c <= '9':
			if n == len(digits) {
				return nil, false
			}
			digits[n], n = c, n+1
		case c != ' ' && c != '-':
			return nil, false
		}
	}
	if input[len(input)-1] == '-' || n < 4 {
		return nil, false
	}
	s := string(digits[:n])
	prefixes := nationalPrefixes()
	for i := 2; i <= 4 && i < len(s); i++ {
		cc := 0
		for _, d := range s[1:i] {
			cc = cc*10 + int(d-'0')
		}
		info, known := prefixes[cc]
		if !known {
			continue
		}
		nsn := s[i:]
		if info.parseOnly || len(nsn) < 2 || len(nsn) > 17 || (info.prefix != nil && info.prefix.MatchString(nsn)) {
			return nil, false
		}
		num = &phonenumbers.PhoneNumber{}
		code, national := int32(cc), uint64(0)
		for _, d := range nsn {
			national = national*10 + uint64(d-'0')
		}
		num.CountryCode, num.NationalNumber = &code, &national
		if nsn[0] == '0' { // as setItalianLeadingZerosForPhoneNumber
			t := true
			num.ItalianLeadingZero = &t
			zeros := int32(1)
			for int(zeros) < len(nsn)-1 && nsn[zeros] == '0' {
				zeros++
			}
			if zeros != 1 {
				num.NumberOfLeadingZeros = &zeros
			}
		}
		return num, true
	}
	return nil, false
}

// countryCode is what parseE164 needs of a country calling code: its
// main region's national prefix for parsing, anchored at the start (nil
// where it has none), or parseOnly where that could not be read.
type countryCode struct {
	prefix    *regexp.Regexp
	parseOnly bool
}

// nationalPrefixes maps each country calling code to its countryCode,
// from libphonenumber's own metadata, chosen as Parse chooses it.
var nationalPrefixes = sync.OnceValue(func() map[int]countryCode {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil // the fast path never applies; Parse does all
	}
	byRegion := map[string]*phonenumbers.PhoneMetadata{}
	nonGeo := map[int]*phonenumbers.PhoneMetadata{}
	for _, m := range coll.GetMetadata() {
		if m.GetId() == nonGeoRegion {
			nonGeo[int(m.GetCountryCode())] = m
		} else {
			byRegion[m.GetId()] = m
		}
	}
	codes := map[int]countryCode{}
	for cc := 1; cc < 1000; cc++ {
		region := phonenumbers.GetRegionCodeForCountryCode(cc)
		if region == unknownRegion {
			continue // not a country calling code: Parse goes on to the next length
		}
		m := byRegion[region]
		if region == nonGeoRegion {
			m = nonGeo[cc]
		}
		if m == nil {
			codes[cc] = countryCode{parseOnly: true}
			continue
		}
		var c countryCode
		if p := m.GetNationalPrefixForParsing(); p != "" {
			if c.prefix, err = regexp.Compile("^(?:" + p + ")"); err != nil {
				c = countryCode{parseOnly: true}
			}
		}
		codes[cc] = c
	}
	return codes
})

// unknownRegion is GetRegionCodeForCountryCode's answer for a code that
// is none.
const unknownRegion = "ZZ"
