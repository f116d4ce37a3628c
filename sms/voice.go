package sms

import "strings"

// A voice message is read out by the provider's text-to-speech in a
// language it names as a BCP 47 tag with a region ("fr-FR"). The
// template's locale picks it: a tag with a region is kept, a bare language
// gets the region its speakers most often use, and no locale reads in
// English.
var voiceRegions = map[string]string{
	"ar": "ar-SA", "cs": "cs-CZ", "cy": "cy-GB", "da": "da-DK", "de": "de-DE", "el": "el-GR", "en": "en-US",
	"es": "es-ES", "fi": "fi-FI", "fr": "fr-FR", "he": "he-IL", "hi": "hi-IN", "hu": "hu-HU", "id": "id-ID",
	"is": "is-IS", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR", "ms": "ms-MY", "nb": "nb-NO", "nl": "nl-NL",
	"no": "nb-NO", "pl": "pl-PL", "pt": "pt-BR", "ro": "ro-RO", "ru": "ru-RU", "sk": "sk-SK", "sv": "sv-SE",
	"ta": "ta-IN", "th": "th-TH", "tr": "tr-TR", "uk": "uk-UA", "vi": "vi-VN", "zh": "zh-CN",
}

// VoiceLanguage is the text-to-speech language of a message in locale:
// "fr" → "fr-FR", "fr-CA" (or "fr_ca") → "fr-CA", "zh-Hant-TW" → "zh-TW",
// "" → "en-US". A language
// the table does not know is passed on as it is: the provider refuses it
// or reads in its default.
func VoiceLanguage(locale string) string {
	l := canonicalLocale(locale)
	if l == "" {
		return "en-US"
	}
	parts := strings.Split(l, "-")
	if region := regionOf(parts); region != "" {
		return parts[0] + "-" + region
	}
	if r, ok := voiceRegions[parts[0]]; ok {
		return r
	}
	return parts[0]
}

// whatsAppLanguage is a WhatsApp template's language code for locale, as
// Meta names them: "en", "fr", "en_GB", "pt_BR"; "en" when none.
func whatsAppLanguage(locale string) string {
	l := canonicalLocale(locale)
	if l == "" {
		return "en"
	}
	parts := strings.Split(l, "-")
	if region := regionOf(parts); region != "" {
		return parts[0] + "_" + region
	}
	return parts[0]
}

// regionOf is the region subtag (two letters, after the language) of a
// canonical tag's parts: "TW" of zh-Hant-TW; "" when none.
func regionOf(parts []string) string {
	for _, p := range parts[1:] {
		if len(p) == 2 {
			return p
		}
	}
	return ""
}
