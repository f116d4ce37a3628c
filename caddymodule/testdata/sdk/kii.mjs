// kii-cloud-sdk (Kii Cloud's JavaScript SDK, its Node build), unmodified,
// pointed at caddy-phone with Kii.initializeWithSite(appId, appKey,
// "<baseUrl>/api"). Every action first signs in as an app does,
// KiiUser.authenticateWithToken(token) (GET users/me), then:
//   node kii.mjs authenticate '{"baseUrl","appId","appKey","token"}'            → nothing more
//   node kii.mjs change       '{"baseUrl","appId","appKey","token","phone"}'    → user.changePhone(phone), user.refresh()
//   node kii.mjs verify       '{"baseUrl","appId","appKey","token","code"}'     → user.verifyPhoneNumber(code), user.refresh()
//   node kii.mjs resend       '{"baseUrl","appId","appKey","token"}'            → user.resendPhoneNumberVerification()
//   node kii.mjs refresh      '{"baseUrl","appId","appKey","token"}'            → user.refresh()
// Prints {ok: true, data} where data is the KiiUser as the SDK holds it
// ({id, phoneNumber, phoneVerified, pendingPhoneNumber}), or {ok: false,
// error: {errorCode, message}} split from the Error the SDK rejects with
// ("<errorCode>: <message>"). The failed step is in error.step.
import { createRequire } from 'node:module';
import { args, print, fail } from './lib.mjs';

const require = createRequire(import.meta.url);
const { Kii, KiiUser } = require('kii-cloud-sdk').create();

// user is what app code reads from a KiiUser.
function user(u) {
  return {
    id: u.getID() ?? null,
    phoneNumber: u.getPhoneNumber() ?? null,
    phoneVerified: u.getPhoneVerified() ?? null,
    pendingPhoneNumber: u.getPendingPhoneNumber() ?? null,
  };
}

const { action, params: p } = args();
let step = 'authenticateWithToken';
try {
  Kii.initializeWithSite(p.appId, p.appKey ?? 'app-key', p.baseUrl + '/api');
  const me = await KiiUser.authenticateWithToken(p.token);
  switch (action) {
    case 'authenticate':
      break;
    case 'change':
      step = 'changePhone';
      await me.changePhone(p.phone);
      step = 'refresh';
      await me.refresh();
      break;
    case 'verify':
      step = 'verifyPhoneNumber';
      await me.verifyPhoneNumber(p.code);
      step = 'refresh';
      await me.refresh();
      break;
    case 'resend':
      step = 'resendPhoneNumberVerification';
      await me.resendPhoneNumberVerification();
      break;
    case 'refresh':
      step = 'refresh';
      await me.refresh();
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
  print({ ok: true, data: user(me) });
} catch (err) {
  // An API error is "<errorCode>: <message>"; anything else (a network
  // failure: "0 : <url>", a body that was not Kii's) is not an answer.
  const m = /^([A-Z][A-Z_]+): (.*)$/s.exec(String(err?.message ?? ''));
  if (!m) fail(err);
  print({ ok: false, error: { errorCode: m[1], message: m[2], step } });
}
