package e2e

import (
	"testing"
)

// SMS pumping through Supabase's token-less resend, through a real Caddy
// and without the SDK (SPEC §6): a caller who proves no user may resend
// to a number someone waits on, but that spends per_number and per_ip
// (never the owner's per_user, already spent here), the number's budget
// stops it, and polls of numbers nobody waits on spend per_ip until it
// stops the caller too. No SMS goes out beyond the budgets.
func TestSupabaseTokenlessResendBudgets(t *testing.T) {
	e := newEnv(t, site{phone: "compat supabase\n\t\totp {\n\t\t\tresend_after 0\n\t\t}\n" +
		"\t\tlimits {\n\t\t\tper_user 1 1h\n\t\t\tper_number 2 1h\n\t\t\tper_ip 4 1h\n\t\t}\n"})
	u, number := uniqueUser(t, "u"), sdkNumber()
	e.do("PUT", "/auth/v1/user", token(t, u), map[string]any{"phone": number}).want(t, 200, "")
	resend := func(phone string) response {
		return e.do("POST", "/auth/v1/resend", "", map[string]any{"type": "phone_change", "phone": phone})
	}
	if r := resend(number).want(t, 200, ""); r.body["message_id"] == nil {
		t.Fatalf("token-less resend: %s", r.raw)
	}
	if n := e.sink.count(u); n != 2 {
		t.Fatalf("%d SMS, want the update's and the resend's", n)
	}
	r := resend(number)
	if r.status != 429 || r.body["error_code"] != "over_sms_send_rate_limit" || r.header.Get("Retry-After") == "" {
		t.Fatalf("per_number spent: %d %s (Retry-After %q)", r.status, r.raw, r.header.Get("Retry-After"))
	}
	// The update and the resend spent 2 of per_ip (the refused resend
	// nothing); two polls of numbers nobody waits on spend the rest.
	for _, n := range []string{"+33612000001", "+33612000002"} {
		if r := resend(n).want(t, 200, ""); len(r.body) != 0 {
			t.Fatalf("a number nobody waits on: %s", r.raw)
		}
	}
	r = resend("+33612000003")
	if r.status != 429 || r.body["error_code"] != "over_sms_send_rate_limit" || r.header.Get("Retry-After") == "" {
		t.Fatalf("per_ip spent: %d %s", r.status, r.raw)
	}
	if n := e.sink.count(u); n != 2 {
		t.Fatalf("%d SMS after the refusals, want 2", n)
	}
}
