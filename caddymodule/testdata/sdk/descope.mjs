// @descope/node-sdk (on @descope/core-js-sdk), unmodified, pointed at caddy-phone.
//   node descope.mjs update '{"baseUrl","projectId","loginId","phone","token","options"?,"method"?}'
//     → sdk.otp.update.phone[method](loginId, phone, token, options), method sms (default), voice or whatsapp
//   node descope.mjs verify '{"baseUrl","projectId","loginId","code","method"?}'
//     → sdk.otp.verify[method](loginId, code)
//   node descope.mjs errors '{}'
//     → the SDK's exported DescopeErrors, as data
// Prints the SdkResponse without its Response object: {ok, code, data?, error?},
// and, for an error, errorName: the DescopeErrors key whose value is its
// errorCode (null if none), i.e. what `err.errorCode === DescopeErrors.<name>`
// in app code would match.
import DescopeClient from '@descope/node-sdk';
import { args, print, fail } from './lib.mjs';

const { action, params: p } = args();
try {
  const sdk = DescopeClient({ projectId: p.projectId, baseUrl: p.baseUrl });
  let res;
  switch (action) {
    case 'update':
      res = await sdk.otp.update.phone[p.method ?? 'sms'](p.loginId, p.phone, p.token, p.options);
      break;
    case 'verify':
      res = await sdk.otp.verify[p.method ?? 'sms'](p.loginId, p.code);
      break;
    case 'errors':
      res = { ok: true, data: DescopeClient.DescopeErrors };
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
  const { response, ...out } = res;
  if (out.error) {
    const errors = DescopeClient.DescopeErrors;
    out.errorName = Object.keys(errors).find((k) => errors[k] === out.error.errorCode) ?? null;
  }
  print(out);
} catch (err) {
  fail(err);
}
