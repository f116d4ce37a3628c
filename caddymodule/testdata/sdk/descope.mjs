// @descope/node-sdk (on @descope/core-js-sdk), unmodified, pointed at caddy-phone.
//   node descope.mjs update '{"baseUrl","projectId","loginId","phone","token","options"?}'
//     → sdk.otp.update.phone.sms(loginId, phone, token, options)
//   node descope.mjs verify '{"baseUrl","projectId","loginId","code"}'
//     → sdk.otp.verify.sms(loginId, code)
// Prints the SdkResponse without its Response object: {ok, code, data?, error?}.
import DescopeClient from '@descope/node-sdk';
import { args, print, fail } from './lib.mjs';

const { action, params: p } = args();
try {
  const sdk = DescopeClient({ projectId: p.projectId, baseUrl: p.baseUrl });
  let res;
  switch (action) {
    case 'update':
      res = await sdk.otp.update.phone.sms(p.loginId, p.phone, p.token, p.options);
      break;
    case 'verify':
      res = await sdk.otp.verify.sms(p.loginId, p.code);
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
  const { response, ...out } = res;
  print(out);
} catch (err) {
  fail(err);
}
