package e2e

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// User-controlled text reaching a voice call (template_options, locale)
// is text in the TwiML, never markup: a </Say><Play …> in an option is
// read out, not played, and a locale shaped to break out of
// <Say language="…"> picks no template and so never reaches the
// attribute, through a real Caddy to a local Twilio.
func TestVoiceTwiMLInjection(t *testing.T) {
	api := newProviderAPI(t, http.StatusCreated, `{"sid":"CA0123456789abcdef0123456789abcdef","status":"queued"}`)
	const sid = "AC0123456789abcdef0123456789abcdef"
	e := newEnv(t, site{phone: `channels sms voice
		template voice "{greeting} Your {app} code is {code}."
		template voice fr "{greeting} Votre code {app} est {code}."
		app_name Acme`, sms: `sms twilio {
			account_sid ` + sid + `
			auth_token tw-token-e2e
			from +15550001111
			api_url ` + api.srv.URL + `
		}`})
	const evil = `</Say><Play>http://evil.example/a.mp3</Play><Say>`
	for _, locale := range []string{`fr"><Play>http://evil.example/b.mp3</Play><Say a="`, "fr"} {
		u := uniqueUser(t, "u")
		e.do("POST", "/phone/update", token(t, u), map[string]any{"phone_number": sdkNumber(), "channel": "voice",
			"locale": locale, "template_options": map[string]string{"greeting": evil}}).want(t, 200, "")
		reqs, bodies := api.calls()
		if r := reqs[len(reqs)-1]; r.URL.Path != "/2010-04-01/Accounts/"+sid+"/Calls.json" ||
			r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(sid+":tw-token-e2e")) {
			t.Fatalf("request %s %v", r.URL.Path, r.Header)
		}
		f, err := url.ParseQuery(bodies[len(bodies)-1])
		if err != nil {
			t.Fatal(err)
		}
		var twiml struct {
			XMLName xml.Name
			Items   []struct {
				XMLName  xml.Name
				Language string `xml:"language,attr"`
				Text     string `xml:",chardata"`
				Inner    string `xml:",innerxml"`
			} `xml:",any"`
		}
		if err := xml.Unmarshal([]byte(f.Get("Twiml")), &twiml); err != nil || twiml.XMLName.Local != "Response" {
			t.Fatalf("TwiML %q: %v", f.Get("Twiml"), err)
		}
		wantLang := "en-US"
		if locale == "fr" {
			wantLang = "fr-FR"
		}
		var says int
		for _, it := range twiml.Items {
			switch it.XMLName.Local {
			case "Pause":
			case "Say":
				says++
				if it.Language != wantLang || !strings.HasPrefix(it.Text, evil+" ") || it.Inner == it.Text {
					t.Fatalf("locale %q: <Say language=%q>%q (inner %q)", locale, it.Language, it.Text, it.Inner)
				}
			default:
				t.Fatalf("locale %q: element <%s> in the TwiML %q", locale, it.XMLName.Local, f.Get("Twiml"))
			}
		}
		if says != 2 {
			t.Fatalf("locale %q: %d <Say>, want 2: %q", locale, says, f.Get("Twiml"))
		}
	}
}
