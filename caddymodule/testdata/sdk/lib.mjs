// Shared by the SDK scripts: read the call's parameters, print one JSON
// result line. Usage of every script: node <script>.mjs <action> '<json params>'
// (params may also come from env PHONE_SDK_PARAMS). The script exits 0 when
// the SDK answered, success or error (the Go test judges the answer), and
// 2 when the SDK threw something that is not an API answer (a network,
// TLS or parse failure), which the Go test reports as such.

export function args() {
  const [action, raw] = process.argv.slice(2);
  const params = JSON.parse(raw ?? process.env.PHONE_SDK_PARAMS ?? '{}');
  if (!action) fail(new Error('usage: node <script>.mjs <action> <json params>'));
  return { action, params };
}

// print writes one JSON line: {ok, ...fields}.
export function print(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

// fail reports a thrown Error (not an API error body) and exits 2.
export function fail(err) {
  print({ ok: false, thrown: String(err?.stack ?? err), cause: String(err?.cause ?? '') });
  process.exit(2);
}
