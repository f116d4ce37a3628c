package sms

import (
	"strings"
	"testing"
)

func TestTemplatesRender(t *testing.T) {
	tpl := Templates{
		Default: "Your {app} code is {code}. It expires in {minutes} min.",
		ByLocale: map[string]string{
			"fr":    "Votre code {app} est {code}. Il expire dans {minutes} min.",
			"fr_CA": "Code {app} : {code} ({minutes} min).",
			"pt-BR": "Código {code}",
		},
	}
	vars := Vars{Code: "482913", App: "Acme", Minutes: 10}
	tests := []struct {
		name, tplLocale string
		tpl             *Templates
		vars            *Vars
		want, wantLoc   string
	}{
		{"default", "", nil, nil, "Your Acme code is 482913. It expires in 10 min.", "en"},
		{"unknown locale", "de", nil, nil, "Your Acme code is 482913. It expires in 10 min.", "en"},
		{"exact", "fr", nil, nil, "Votre code Acme est 482913. Il expire dans 10 min.", "fr"},
		{"exact, case-insensitive", "FR", nil, nil, "Votre code Acme est 482913. Il expire dans 10 min.", "fr"},
		{"region, dash", "fr-CA", nil, nil, "Code Acme : 482913 (10 min).", "fr-CA"},
		{"region, underscore and case", "FR_ca", nil, nil, "Code Acme : 482913 (10 min).", "fr-CA"},
		{"region falls back to base", "fr-BE", nil, nil, "Votre code Acme est 482913. Il expire dans 10 min.", "fr"},
		{"script falls back to base", "fr-Latn-FR", nil, nil, "Votre code Acme est 482913. Il expire dans 10 min.", "fr"},
		{"no base template", "pt", nil, nil, "Your Acme code is 482913. It expires in 10 min.", "en"},
		{"region key only", "pt_br", nil, nil, "Código 482913", "pt-BR"},
		{"garbage locale", strings.Repeat("x", 100), nil, nil, "Your Acme code is 482913. It expires in 10 min.", "en"},
		{"empty Default uses built-in", "de", &Templates{}, nil, "Your Acme code is 482913. It expires in 10 min.", "en"},
		{"options fill placeholders", "", &Templates{Default: "{greeting} {name}, {code} for {app}"},
			&Vars{Code: "1234", App: "Acme", Options: map[string]string{"greeting": "Hi", "name": "Ann"}}, "Hi Ann, 1234 for Acme", "en"},
		{"options cannot override", "", &Templates{Default: "{code} {app} {minutes}"},
			&Vars{Code: "1234", App: "Acme", Minutes: 5, Options: map[string]string{"code": "0000", "app": "Evil", "minutes": "99"}}, "1234 Acme 5", "en"},
		{"no double expansion", "", &Templates{Default: "{name}: {code}"},
			&Vars{Code: "1234", App: "{code}", Options: map[string]string{"name": "{code}{app}"}}, "{code}{app}: 1234", "en"},
		{"app value not expanded", "", &Templates{Default: "{app} {code}"},
			&Vars{Code: "1234", App: "{minutes}"}, "{minutes} 1234", "en"},
		{"unknown placeholder kept", "", &Templates{Default: "{code} {unknown} {} {"},
			&Vars{Code: "1234"}, "1234 {unknown} {} {", "en"},
		{"nested braces", "", &Templates{Default: "{{code}} }{code}{ {co{code}"},
			&Vars{Code: "1234"}, "{1234} }1234{ {co1234", "en"},
		{"repeated", "", &Templates{Default: "{code}-{code}"}, &Vars{Code: "99"}, "99-99", "en"},
		{"unicode around", "", &Templates{Default: "→{code}←"}, &Vars{Code: "7"}, "→7←", "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, v := tpl, vars
			if tt.tpl != nil {
				tp = *tt.tpl
			}
			if tt.vars != nil {
				v = *tt.vars
			}
			body, loc := tp.Render(tt.tplLocale, v)
			if body != tt.want || loc != tt.wantLoc {
				t.Errorf("Render(%q) = %q, %q; want %q, %q", tt.tplLocale, body, loc, tt.want, tt.wantLoc)
			}
		})
	}
}

func TestTemplatesValidate(t *testing.T) {
	tests := []struct {
		tpl  Templates
		want string // substring of the error; "" = valid
	}{
		{Templates{}, ""},
		{Templates{Default: "code {code}", ByLocale: map[string]string{"fr": "code {code}", "fr-CA": "{code}", "zh-Hant": "{code}"}}, ""},
		{Templates{Default: "no code here"}, "default template must contain {code}"},
		{Templates{ByLocale: map[string]string{"fr": "{minutes}"}}, "template fr: must contain {code}"},
		{Templates{ByLocale: map[string]string{"fr_CA": "{code}", "fr-ca": "{code}"}}, "same locale"},
		{Templates{ByLocale: map[string]string{"": "{code}"}}, "invalid locale"},
		{Templates{ByLocale: map[string]string{"fr CA": "{code}"}}, "invalid locale"},
		{Templates{ByLocale: map[string]string{"fr-": "{code}"}}, "invalid locale"},
		{Templates{ByLocale: map[string]string{"abcdefghi": "{code}"}}, "invalid locale"},
	}
	for _, tt := range tests {
		err := tt.tpl.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.tpl, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: err = %v, want %q", tt.tpl, err, tt.want)
		}
	}
}

func FuzzExpand(f *testing.F) {
	f.Add("{code} {app} {x}", "1234", "{code}")
	f.Add("{{}}{", "", "")
	f.Fuzz(func(t *testing.T, text, code, opt string) {
		out := expand(text, Vars{Code: code, App: "A", Options: map[string]string{"x": opt}})
		if !strings.Contains(text, "{") && out != text {
			t.Fatalf("text without braces changed: %q → %q", text, out)
		}
	})
}
