// @clerk/backend, unmodified, pointed at caddy-phone's admin endpoints.
//   node clerk.mjs create '{"apiUrl","secretKey","args":{userId, phoneNumber, verified?, primary?, reservedForSecondFactor?}}'
//     → clerk.phoneNumbers.createPhoneNumber(args)
//   node clerk.mjs get    '{"apiUrl","secretKey","id"}'          → clerk.phoneNumbers.getPhoneNumber(id)
//   node clerk.mjs update '{"apiUrl","secretKey","id","args"?}'  → clerk.phoneNumbers.updatePhoneNumber(id, args)
//   node clerk.mjs delete '{"apiUrl","secretKey","id"}'          → clerk.phoneNumbers.deletePhoneNumber(id)
//   node clerk.mjs getUser     '{"apiUrl","secretKey","id"}'          → clerk.users.getUser(id)
//   node clerk.mjs updateUser  '{"apiUrl","secretKey","id","args"}'   → clerk.users.updateUser(id, args)
//   node clerk.mjs getUserList '{"apiUrl","secretKey","args"}'        → clerk.users.getUserList(args)
//   node clerk.mjs getCount    '{"apiUrl","secretKey","args"}'        → clerk.users.getCount(args)
// A User prints with what app code reads of it: its own fields and the
// primaryPhoneNumber getter (the number, or null); getUserList prints
// {data: [users], totalCount}, getCount {count}.
// Prints {ok: true, data: <the SDK's object>, class: <its class name>} or,
// when the SDK throws a ClerkAPIResponseError, {ok: false, code: <status>,
// error: {isClerkAPIResponseError, status, errors: [{code, message,
// longMessage, meta}]}}. Anything else thrown exits 2 (lib.mjs).
import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { args, print, fail } from './lib.mjs';

const { action, params: p } = args();
const clerk = createClerkClient({ secretKey: p.secretKey, apiUrl: p.apiUrl });
// user is a User as app code reads it, getters included.
const user = (u) => ({ ...u, userClass: u.constructor.name, primaryPhoneNumber: u.primaryPhoneNumber?.phoneNumber ?? null,
  phoneNumberClasses: u.phoneNumbers.map((n) => n.constructor.name) });

try {
  let data;
  switch (action) {
    case 'create':
      data = await clerk.phoneNumbers.createPhoneNumber(p.args);
      break;
    case 'get':
      data = await clerk.phoneNumbers.getPhoneNumber(p.id);
      break;
    case 'update':
      data = await clerk.phoneNumbers.updatePhoneNumber(p.id, p.args);
      break;
    case 'delete':
      data = await clerk.phoneNumbers.deletePhoneNumber(p.id);
      break;
    case 'getUser':
      data = user(await clerk.users.getUser(p.id));
      break;
    case 'updateUser':
      data = user(await clerk.users.updateUser(p.id, p.args));
      break;
    case 'getUserList': {
      const res = await clerk.users.getUserList(p.args);
      data = { data: res.data.map(user), totalCount: res.totalCount };
      break;
    }
    case 'getCount':
      data = { count: await clerk.users.getCount(p.args) };
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
  print({ ok: true, class: data?.constructor?.name ?? null, data });
} catch (err) {
  if (!isClerkAPIResponseError(err)) fail(err);
  print({
    ok: false,
    code: err.status,
    error: {
      isClerkAPIResponseError: true,
      status: err.status,
      retryAfter: err.retryAfter ?? null,
      errors: err.errors.map((e) => ({ code: e.code, message: e.message, longMessage: e.longMessage, meta: e.meta })),
    },
  });
}
