// @supabase/supabase-js (auth-js inside), unmodified, pointed at caddy-phone.
// Every action runs in a fresh client, as a page load would: the app hands
// its legacy JWT over with auth.setSession first.
//   node supabase.mjs session '{"url","anonKey","token"}'                → auth.setSession({access_token, refresh_token})
//   node supabase.mjs user    '{"url","anonKey","token"}'                → setSession, then auth.getUser()
//   node supabase.mjs update  '{"url","anonKey","token","phone"}'        → setSession, then auth.updateUser({phone})
//   node supabase.mjs verify  '{"url","anonKey","phone","code"}'         → auth.verifyOtp({phone, token, type: 'phone_change'})
//   node supabase.mjs resend  '{"url","anonKey","phone"}'                → auth.resend({type: 'phone_change', phone})
// Prints {ok, data, error} where error is the AuthError's name, message,
// status and code (what `error instanceof AuthApiError`, `error.code`
// give app code), and isAuthApiError.
import { createClient, isAuthApiError } from '@supabase/supabase-js';
import WebSocket from 'ws';
import { args, print, fail } from './lib.mjs';

const { action, params: p } = args();
try {
  const supabase = createClient(p.url, p.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    // Node 20 has no global WebSocket; realtime-js needs one to construct.
    realtime: { transport: WebSocket },
  });
  const auth = supabase.auth;
  const signIn = async () => {
    // The refresh token is never sent while the access token is valid.
    const res = await auth.setSession({ access_token: p.token, refresh_token: 'legacy-app' });
    if (res.error) {
      done(res);
      return false;
    }
    return true;
  };
  let res;
  switch (action) {
    case 'session':
      res = await auth.setSession({ access_token: p.token, refresh_token: 'legacy-app' });
      if (res.data?.session) res.data.session = { expires_at: res.data.session.expires_at, user: res.data.session.user };
      break;
    case 'user':
      if (!(await signIn())) break;
      res = await auth.getUser();
      break;
    case 'update':
      if (!(await signIn())) break;
      res = await auth.updateUser({ phone: p.phone });
      break;
    case 'verify':
      res = await auth.verifyOtp({ phone: p.phone, token: p.code, type: 'phone_change' });
      break;
    case 'resend':
      res = await auth.resend({ type: 'phone_change', phone: p.phone });
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
  if (res) done(res);
} catch (err) {
  fail(err);
}

function done({ data, error }) {
  if (error && !isAuthApiError(error) && error.name !== 'AuthSessionMissingError') {
    // Not an API answer (a network failure, an unparsable body).
    fail(error);
  }
  print({
    ok: !error,
    data: data ?? null,
    error: error ? { name: error.name, message: error.message, status: error.status, code: error.code ?? null } : null,
  });
}
