package numbers

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		in     string
		want   string
		err    error // nil, ErrInvalid or ErrNotAllowed
		reason string
	}{
		{"US E.164", Policy{}, "+1 650 253 0000", "+16502530000", nil, ""},
		{"US compact", Policy{}, "+16502530000", "+16502530000", nil, ""},
		{"US national needs region", Policy{}, "(650) 253-0000", "", ErrInvalid, "international format"},
		{"US national with region", Policy{DefaultRegion: "US"}, "(650) 253-0000", "+16502530000", nil, ""},
		{"region lower case", Policy{DefaultRegion: "us"}, "650.253.0000", "+16502530000", nil, ""},
		{"US trims spaces", Policy{}, "  +1 650 253 0000\t ", "+16502530000", nil, ""},
		{"FR mobile", Policy{}, "+33 6 12 34 56 78", "+33612345678", nil, ""},
		{"FR mobile national", Policy{DefaultRegion: "FR"}, "06 12 34 56 78", "+33612345678", nil, ""},
		{"FR international prefix", Policy{DefaultRegion: "FR"}, "0033 6 12 34 56 78", "+33612345678", nil, ""},
		{"US IDD to FR", Policy{DefaultRegion: "US"}, "011 33 6 12 34 56 78", "+33612345678", nil, ""},
		{"plus wins over region", Policy{DefaultRegion: "US"}, "+33612345678", "+33612345678", nil, ""},
		{"tel URI", Policy{}, "tel:+33-6-12-34-56-78", "+33612345678", nil, ""},
		{"GB mobile", Policy{}, "+44 7400 123456", "+447400123456", nil, ""},
		{"GB mobile national", Policy{DefaultRegion: "GB"}, "07400 123456", "+447400123456", nil, ""},
		{"GB fixed refused", Policy{}, "+44 20 7946 0958", "", ErrNotAllowed, "fixed_line numbers"},
		{"FR fixed refused by default", Policy{}, "+33 1 42 68 53 00", "", ErrNotAllowed, "fixed_line numbers are not allowed"},
		{"FR fixed allowed by types", Policy{Types: []string{"mobile", "fixed_line"}}, "+33 1 42 68 53 00", "+33142685300", nil, ""},
		{"US premium refused by default", Policy{}, "+1 900 253 0000", "", ErrNotAllowed, "premium_rate numbers are not allowed"},
		{"FR premium refused by default", Policy{}, "+33 8 92 12 34 56", "", ErrNotAllowed, "premium_rate"},
		{"GB toll-free refused by default", Policy{}, "+44 800 123 4567", "", ErrNotAllowed, "toll_free numbers are not allowed"},
		{"US toll-free allowed by types", Policy{Types: []string{"toll_free"}}, "+1 800 253 0000", "+18002530000", nil, ""},
		{"type name spelling", Policy{Types: []string{"Toll-Free"}}, "+1 800 253 0000", "+18002530000", nil, ""},
		{"mobile only refuses US", Policy{Types: []string{"mobile"}}, "+1 650 253 0000", "", ErrNotAllowed, "fixed_line_or_mobile"},
		{"allow list accepts", Policy{Allow: []string{"US", "FR"}}, "+33612345678", "+33612345678", nil, ""},
		{"allow list refuses", Policy{Allow: []string{"US", "fr"}}, "+447400123456", "", ErrNotAllowed, "country GB is not allowed"},
		{"allow US refuses CA", Policy{Allow: []string{"US"}}, "+1 416 234 5678", "", ErrNotAllowed, "country CA"},
		{"deny list", Policy{Deny: []string{"FR"}}, "+33612345678", "", ErrNotAllowed, "country FR is not allowed"},
		{"deny wins over allow", Policy{Allow: []string{"FR"}, Deny: []string{"FR"}}, "+33612345678", "", ErrNotAllowed, "country FR"},
		{"Isle of Man is not GB", Policy{Allow: []string{"GB"}}, "+44 7624 123456", "", ErrNotAllowed, "country IM"},
		{"non-geographic deny", Policy{Types: []string{"toll_free"}, Deny: []string{"001"}}, "+800 1234 5678", "", ErrNotAllowed, "country 001"},
		{"empty", Policy{}, "", "", ErrInvalid, "empty"},
		{"blank", Policy{DefaultRegion: "US"}, "   ", "", ErrInvalid, "empty"},
		{"letters", Policy{DefaultRegion: "US"}, "hello", "", ErrInvalid, ""},
		{"too short", Policy{}, "+33 6", "", ErrInvalid, ""},
		{"invalid for region", Policy{}, "+33 9 99", "", ErrInvalid, ""},
		{"unknown country code", Policy{}, "+999 123 456 789", "", ErrInvalid, ""},
		{"US invalid area code", Policy{}, "+1 123 456 7890", "", ErrInvalid, "not a valid number"},
		{"too long", Policy{}, "+1 650 253 0000" + strings.Repeat(" ", 60), "", ErrInvalid, "too long"},
		{"control char", Policy{}, "+1 650\x00253 0000", "", ErrInvalid, "control"},
		{"newline inside", Policy{}, "+1 650\n253 0000", "", ErrInvalid, "control"},
		{"bidi override", Policy{}, "+1 650\u202e253 0000", "", ErrInvalid, "control"},
		{"non UTF-8", Policy{}, "+1 650 \xff253 0000", "", ErrInvalid, "UTF-8"},
		{"extension", Policy{}, "+1 650 253 0000 ext. 123", "", ErrInvalid, "extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.policy.Normalize(tt.in)
			if tt.err == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Normalize(%q) = %q, %v; want %v", tt.in, got, err, tt.err)
			}
			if got != "" {
				t.Errorf("Normalize(%q) returned %q with an error", tt.in, got)
			}
			if tt.reason != "" && !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			// The error must not echo the number.
			if digits := onlyDigits(tt.in); len(digits) >= 6 && strings.Contains(onlyDigits(err.Error()), digits[len(digits)-6:]) {
				t.Errorf("error %q leaks the number", err)
			}
		})
	}
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		policy Policy
		want   string // "" = valid
	}{
		{Policy{}, ""},
		{Policy{DefaultRegion: "US", Allow: []string{"us", "CA", "GB", "FR"}, Deny: []string{"RU"}, Types: []string{"mobile", "fixed_line_or_mobile"}}, ""},
		{Policy{Types: []string{"mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", "premium_rate", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail"}}, ""},
		{Policy{Deny: []string{"001"}}, ""},
		{Policy{DefaultRegion: "XX"}, `numbers: default_region: unknown region "XX"`},
		{Policy{DefaultRegion: "001"}, `numbers: default_region: unknown region "001"`},
		{Policy{DefaultRegion: "USA"}, `numbers: default_region: unknown region "USA"`},
		{Policy{Allow: []string{"US", "ZZ"}}, `numbers: allow_countries: unknown region "ZZ"`},
		{Policy{Deny: []string{""}}, `numbers: deny_countries: unknown region ""`},
		{Policy{Types: []string{"mobile", "landline"}}, `numbers: types: unknown type "landline"`},
		{Policy{Types: []string{"unknown"}}, `numbers: types: unknown type "unknown"`},
	}
	for _, tt := range tests {
		err := tt.policy.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.policy, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%+v: error %v, want %q", tt.policy, err, tt.want)
		}
	}
	if _, err := (Policy{DefaultRegion: "XX"}).Normalize("+16502530000"); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("Normalize with a bad policy: %v, want the config error", err)
	}
}

func TestCheckerConcurrent(t *testing.T) {
	c, err := Policy{DefaultRegion: "FR"}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if got, err := c.Normalize("06 12 34 56 78"); err != nil || got != "+33612345678" {
					t.Errorf("got %q, %v", got, err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+33612345678", "+33*****5678"},   // spec §4 example
		{"+16502530000", "+1******0000"},   // 10 national digits
		{"+447400123456", "+44******3456"}, // 10
		{"+390612345678", "+39******5678"},
		{"+80012345678", "+800****5678"}, // 8 national digits
		{"+3541234567", "+354****567"},   // 7 national digits: 3 shown
		{"+6834002", "+683**02"},         // Niue, 4 national digits: 2 shown
		{"+37612345", "+376***45"},       // Andorra, 5
		{"+683400", "+683***"},           // 3 national digits: nothing shown
		{"", "****"},
		{"+", "****"},
		{"+3", "****"},
		{"33612345678", "****"},
		{"+33 6 12 34 56 78", "****"},
		{"+33612345678x", "****"},
		{"+336123456781234567890", "****"},         // 21 digits: longer than any number libphonenumber formats
		{"+4920100000000000", "+49**********0000"}, // 16 digits: a valid German number, longer than E.164 allows
		{"+999123456789", "****"},                  // unassigned country code
		{"+٣٣٦١٢٣٤٥٦٧٨", "****"},                   // non-ASCII digits
	}
	for _, tt := range tests {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+16502530000", "(650) 253-0000", "+33 6 12 34 56 78", "06 12 34 56 78",
		"0033612345678", "011 33 6 12 34 56 78", "+44 7400 123456", "07400 123456",
		"+39 06 1234 5678", "+800 1234 5678", "tel:+33-6-12-34-56-78", "1-800-FLOWERS",
		"+1 650 253 0000 ext. 123", "+", "", " ", "++1", "+0", "+1 ()-.", "＋３３６１２３４５６７８",
		"+33 1 42 68 53 00", "+1 900 253 0000", "\x00", "+1\u202e650", "\xff",
	} {
		f.Add(s, "")
		f.Add(s, "US")
		f.Add(s, "FR")
	}
	checkers := map[string]*Checker{}
	for _, region := range []string{"", "US", "FR", "GB", "IT", "DE", "BR", "AR", "MX", "CN", "IN", "JP", "RU", "KZ"} {
		c, err := Policy{DefaultRegion: region, Types: []string{
			"mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", "premium_rate", "shared_cost",
			"voip", "personal_number", "pager", "uan", "voicemail",
		}}.Compile()
		if err != nil {
			f.Fatal(err)
		}
		checkers[region] = c
	}
	strict := checkers[""]
	f.Fuzz(func(t *testing.T, input, region string) {
		c, ok := checkers[region]
		if !ok {
			c = checkers["US"]
		}
		got, err := c.Normalize(input)
		_ = Mask(input)
		if err != nil {
			if got != "" {
				t.Fatalf("Normalize(%q) = %q with error %v", input, got, err)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Normalize(%q): unclassified error %v", input, err)
			}
			return
		}
		// A normalized number is a fixed point, whatever the default region.
		again, err := strict.Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q, which re-normalizes to %q, %v", input, got, again, err)
		}
		if m := Mask(got); m == "****" || !strings.HasPrefix(m, "+") || len(m) != len(got) {
			t.Fatalf("Mask(%q) = %q", got, m)
		}
	})
}
