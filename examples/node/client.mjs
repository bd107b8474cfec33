// A client of the billing API: gets an access token with the client credentials grant and calls
// GET /invoices. The credentials are files of a directory (a mounted credential Secret, or what
// m2m dev writes: .dev/credentials/<namespace>/<name>), read again for every token request so
// that a rotated secret is picked up. Node 20+, no dependency.
//
//   node examples/node/client.mjs        # from the repository root, with make dev running
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const dir = process.env.M2M_CREDENTIALS ?? '.dev/credentials/payments/billing-worker';
const api = process.env.BILLING_API ?? 'http://127.0.0.1:8081';

const read = async (key) => (await readFile(join(dir, key), 'utf8')).trim();

let cached; // {token, expiresAt}

async function token() {
  if (cached && Date.now() < cached.expiresAt - 30_000) return cached.token;
  const [id, secret, tokenURL, audience] = await Promise.all(
    ['client_id', 'client_secret', 'token_url', 'audience'].map(read));
  const res = await fetch(tokenURL, {
    method: 'POST',
    headers: {
      // client_secret_basic: RFC 6749 §2.3.1 form-encodes id and secret before base64.
      authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64'),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', audience }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`token endpoint: ${res.status} ${body.error}: ${body.error_description ?? ''}`);
  cached = { token: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
  return cached.token;
}

async function call() {
  let res = await fetch(`${api}/invoices`, { headers: { authorization: `Bearer ${await token()}` } });
  if (res.status === 401) { // a cached token the API no longer accepts: get a new one, once
    cached = undefined;
    res = await fetch(`${api}/invoices`, { headers: { authorization: `Bearer ${await token()}` } });
  }
  console.log(res.status, `${api}/invoices`);
  console.log(await res.text());
  if (!res.ok) process.exitCode = 1;
}

await call();
