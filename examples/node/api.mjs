// The billing API with express-oauth2-jwt-bearer: each route accepts only access tokens of the
// token server for audience billing.billing that carry the route's scope.
//
//   cd examples/node && npm install && cd ../.. && node examples/node/api.mjs
import { readFileSync } from 'node:fs';
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';

// The issuer exactly as in credential Secrets; with make dev, read it from what m2m dev wrote.
const issuer = process.env.M2M_ISSUER
  ?? readFileSync('.dev/credentials/payments/billing-worker/issuer', 'utf8').trim();
const [host, port] = (process.env.BILLING_ADDR ?? '127.0.0.1:8081').split(':');

const app = express();
// Discovers the JWKS from the issuer's metadata; checks the signature, iss, aud and exp.
// (It refuses an http:// issuer when NODE_ENV=production: in a cluster the issuer is https.)
app.use(auth({ issuerBaseURL: issuer, audience: 'billing.billing' }));
app.get('/invoices', requiredScopes('invoices:read'), (req, res) => {
  const { namespace, client_id } = req.auth.payload;
  res.send(`invoices for ${namespace}/${client_id}\n`);
});
app.post('/invoices', requiredScopes('invoices:write'), (req, res) => {
  res.status(201).send(`invoice created by ${req.auth.payload.client_id}\n`);
});
app.listen(Number(port), host, () => console.log(`billing API on http://${host}:${port} (issuer ${issuer})`));
