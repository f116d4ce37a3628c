// @reachfive/identity-core, unmodified, pointed at caddy-phone. The SDK
// always calls https://<domain>: run with NODE_EXTRA_CA_CERTS naming the
// CA that signed the site's certificate.
//   node reachfive.mjs config '{"domain","clientId"?,"language"?}'   → client.remoteSettings
//   node reachfive.mjs update '{"domain","token","phone"}'           → client.updatePhoneNumber({accessToken, phoneNumber})
//   node reachfive.mjs send   '{"domain","token"}'                   → client.sendPhoneNumberVerification({accessToken})
//   node reachfive.mjs verify '{"domain","token","phone","code"}'    → client.verifyPhoneNumber({accessToken, phoneNumber, verificationCode})
//   node reachfive.mjs user   '{"domain","token","fields"?}'         → client.getUser({accessToken, fields})
// createClient also takes "locale" (sent as Custom-Locale).
// Prints {ok: true, data} or {ok: false, error} where error is the
// camelCased error body the SDK rejects with.
import { args, print, fail } from './lib.mjs';

// identity-core is a browser SDK: it reads window.location.search and
// window.crypto.randomUUID (for X-R5-Correlation-Id).
globalThis.window = { location: { search: '' }, crypto: globalThis.crypto };
const { createClient } = await import('@reachfive/identity-core');

const { action, params: p } = args();
let call;
try {
  const client = createClient({
    domain: p.domain,
    clientId: p.clientId ?? 'x',
    language: p.language,
    locale: p.locale,
  });
  switch (action) {
    case 'config':
      call = client.remoteSettings;
      break;
    case 'update':
      call = client.updatePhoneNumber({ accessToken: p.token, phoneNumber: p.phone });
      break;
    case 'send':
      call = client.sendPhoneNumberVerification({ accessToken: p.token });
      break;
    case 'verify':
      call = client.verifyPhoneNumber({ accessToken: p.token, phoneNumber: p.phone, verificationCode: p.code });
      break;
    case 'user':
      call = client.getUser({ accessToken: p.token, fields: p.fields });
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
} catch (err) {
  fail(err);
}
try {
  const data = await call;
  print({ ok: true, data: data ?? null });
} catch (err) {
  // An API error is the (camelCased) body; anything else is a failure.
  if (err instanceof Error) fail(err);
  print({ ok: false, error: err });
}
