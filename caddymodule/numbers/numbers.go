// Package numbers parses, checks and masks phone numbers: the `numbers`
// block of the Caddyfile (SPEC §2) on top of github.com/nyaruka/phonenumbers.
// It has no Caddy dependency.
package numbers

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

var (
	// ErrInvalid: not parseable, or not a valid number for its region.
	ErrInvalid = errors.New("invalid phone number")
	// ErrNotAllowed: a valid number whose country or type the policy refuses.
	ErrNotAllowed = errors.New("phone number not allowed")
)

// MaxInputLength bounds what Normalize will parse: formatted numbers are far
// shorter, and the parser's regular expressions should not see large inputs.
const MaxInputLength = 64

// nonGeoRegion is the library's region code for non-geographic numbers
// (+800, +882, …); it may appear in allow/deny lists.
const nonGeoRegion = "001"

// typeNames maps the config names to the library's types.
var typeNames = map[string]phonenumbers.PhoneNumberType{
	"mobile":               phonenumbers.MOBILE,
	"fixed_line":           phonenumbers.FIXED_LINE,
	"fixed_line_or_mobile": phonenumbers.FIXED_LINE_OR_MOBILE,
	"toll_free":            phonenumbers.TOLL_FREE,
	"premium_rate":         phonenumbers.PREMIUM_RATE,
	"shared_cost":          phonenumbers.SHARED_COST,
	"voip":                 phonenumbers.VOIP,
	"personal_number":      phonenumbers.PERSONAL_NUMBER,
	"pager":                phonenumbers.PAGER,
	"uan":                  phonenumbers.UAN,
	"voicemail":            phonenumbers.VOICEMAIL,
}

// DefaultTypes are the accepted types when Policy.Types is empty: numbers
// that can receive an SMS. Regions where fixed and mobile numbers cannot be
// told apart (US, CA, …) report fixed_line_or_mobile.
var DefaultTypes = []string{"mobile", "fixed_line_or_mobile"}

// typeName is the config name of a library type, for error messages.
func typeName(t phonenumbers.PhoneNumberType) string {
	for name, v := range typeNames {
		if v == t {
			return name
		}
	}
	return "unknown"
}

// Policy is the `numbers` configuration.
type Policy struct {
	// DefaultRegion (ISO 3166 alpha-2) is used for numbers typed without a
	// leading +; "" requires E.164.
	DefaultRegion string `json:"default_region,omitempty"`
	// Allow lists the accepted countries (ISO codes); empty accepts all.
	Allow []string `json:"allow_countries,omitempty"`
	// Deny lists refused countries; it wins over Allow.
	Deny []string `json:"deny_countries,omitempty"`
	// Types lists the accepted number types (mobile, fixed_line, …);
	// empty means DefaultTypes.
	Types []string `json:"types,omitempty"`
}

// Checker is a compiled Policy: safe for concurrent use, and Normalize builds
// nothing per call beyond what the parser does.
type Checker struct {
	// recent remembers recent answers (normalize_cache.go).
	recent recentAnswers
	region string
	allow  map[string]struct{} // nil: all
	deny   map[string]struct{}
	types  uint32 // bit set of phonenumbers.PhoneNumberType
}

// Validate reports the first unknown region or type name, naming the field.
func (p Policy) Validate() error {
	_, err := p.Compile()
	return err
}

// Compile checks the policy and returns its fast form.
func (p Policy) Compile() (*Checker, error) {
	c := &Checker{}
	c.recent.seed = maphash.MakeSeed()
	if p.DefaultRegion != "" {
		r, ok := canonicalRegion(p.DefaultRegion)
		if !ok || r == nonGeoRegion {
			return nil, fmt.Errorf("numbers: default_region: unknown region %q", p.DefaultRegion)
		}
		c.region = r
	}
	var err error
	if c.allow, err = regionSet("allow_countries", p.Allow); err != nil {
		return nil, err
	}
	if c.deny, err = regionSet("deny_countries", p.Deny); err != nil {
		return nil, err
	}
	types := p.Types
	if len(types) == 0 {
		types = DefaultTypes
	}
	for _, name := range types {
		t, ok := typeNames[strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")]
		if !ok {
			return nil, fmt.Errorf("numbers: types: unknown type %q", name)
		}
		c.types |= 1 << uint(t)
	}
	return c, nil
}

func regionSet(field string, codes []string) (map[string]struct{}, error) {
	if len(codes) == 0 {
		return nil, nil
	}
	set := make(map[string]struct{}, len(codes))
	for _, code := range codes {
		r, ok := canonicalRegion(code)
		if !ok {
			return nil, fmt.Errorf("numbers: %s: unknown region %q", field, code)
		}
		set[r] = struct{}{}
	}
	return set, nil
}

// canonicalRegion upper-cases a region code and checks the library knows it.
func canonicalRegion(code string) (string, bool) {
	r := strings.ToUpper(strings.TrimSpace(code))
	if r == nonGeoRegion {
		return r, true
	}
	return r, phonenumbers.GetSupportedRegions()[r]
}

// Normalize compiles the policy and normalizes input; with a fixed policy,
// Compile once and use Checker.Normalize.
func (p Policy) Normalize(input string) (string, error) {
	c, err := p.Compile()
	if err != nil {
		return "", err
	}
	return c.Normalize(input)
}

// Normalize returns input in E.164 form, or an error wrapping ErrInvalid or
// ErrNotAllowed. Error texts carry a reason, never the number.
func (c *Checker) Normalize(input string) (string, error) {
	if len(input) > MaxInputLength {
		return "", fmt.Errorf("%w: too long", ErrInvalid)
	}
	if a := c.recent.get(input); a != nil {
		return a.number, a.err
	}
	number, err := c.normalize(input)
	c.recent.put(input, number, err)
	return number, err
}

func (c *Checker) normalize(input string) (string, error) {
	if len(input) > MaxInputLength {
		return "", fmt.Errorf("%w: too long", ErrInvalid)
	}
	if !utf8.ValidString(input) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalid)
	}
	s := strings.TrimSpace(input)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	}
	for _, r := range s {
		// Control and invisible format characters (bidi overrides, zero-width
		// spaces) have no place in a number and could disguise one in logs.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", fmt.Errorf("%w: contains control characters", ErrInvalid)
		}
	}
	num, fast := parseE164(s)
	var err error
	if !fast {
		num, err = phonenumbers.Parse(s, c.region)
	}
	if err != nil {
		if c.region == "" {
			return "", fmt.Errorf("%w: not in international format (+ and country code)", ErrInvalid)
		}
		return "", fmt.Errorf("%w: not a phone number", ErrInvalid)
	}
	// An SMS cannot reach an extension; dropping it silently would verify a
	// different line than the one typed.
	if num.GetExtension() != "" {
		return "", fmt.Errorf("%w: extensions are not accepted", ErrInvalid)
	}
	// GetNumberType is UNKNOWN exactly when IsValidNumber is false (a
	// number is valid when it matches a type of its own region), and
	// asking both ran the type patterns twice: most of Normalize's cost.
	region := phonenumbers.GetRegionCodeForNumber(num)
	t := phonenumbers.GetNumberType(num)
	if t == phonenumbers.UNKNOWN {
		return "", fmt.Errorf("%w: not a valid number for its country", ErrInvalid)
	}
	if _, denied := c.deny[region]; denied {
		return "", fmt.Errorf("%w: country %s is not allowed", ErrNotAllowed, region)
	}
	if c.allow != nil {
		if _, ok := c.allow[region]; !ok {
			return "", fmt.Errorf("%w: country %s is not allowed", ErrNotAllowed, region)
		}
	}
	if t < 0 || t >= 32 || c.types&(1<<uint(t)) == 0 {
		return "", fmt.Errorf("%w: %s numbers are not allowed", ErrNotAllowed, typeName(t))
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// Mask hides the middle of an E.164 number for logs and responses: the
// country code stays, then the last digits — 4 at most, never more than half
// of the national number, 2 for national numbers of 4 to 6 digits, none
// below that: "+33612345678" → "+33*****5678". Anything that is not E.164
// (or whose country code is unknown) becomes "****".
func Mask(e164 string) string {
	const opaque = "****"
	// E.164 allows 15 digits, but libphonenumber formats some valid
	// numbers (German ones, for one) longer: accept what it produces.
	if len(e164) < 3 || len(e164) > 21 || e164[0] != '+' {
		return opaque
	}
	digits := e164[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return opaque
		}
	}
	// Country codes are prefix-free, so the first known 1–3 digit prefix is it.
	ccLen := 0
	codes := phonenumbers.GetSupportedCallingCodes()
	for l := 1; l <= 3 && l < len(digits); l++ {
		cc := 0
		for _, d := range digits[:l] {
			cc = cc*10 + int(d-'0')
		}
		if codes[cc] {
			ccLen = l
			break
		}
	}
	if ccLen == 0 {
		return opaque
	}
	national := len(digits) - ccLen
	shown := 0
	switch {
	case national >= 8:
		shown = 4
	case national == 7:
		shown = 3
	case national >= 4:
		shown = 2
	}
	var b strings.Builder
	b.Grow(len(e164))
	b.WriteString(e164[:1+ccLen])
	b.WriteString(strings.Repeat("*", national-shown))
	b.WriteString(e164[len(e164)-shown:])
	return b.String()
}
