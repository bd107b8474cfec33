// Copyright 2026 The m2m-operator Authors.
// Licensed under the Apache License, Version 2.0.
//
// Node OAuth and JOSE libraries against the real token server: openid-client and oauth4webapi
// (discovery through both metadata documents; client_secret_basic, client_secret_post,
// private_key_jwt with ES256, RS256 and Ed25519 keys; RFC 6749 §5.2 errors as OAuth errors), jose
// and express-oauth2-jwt-bearer (RFC 9068 verification), oauth4webapi's validateJwtAccessToken,
// and DPoP (RFC 9449): bound tokens from oauth4webapi and openid-client, verified in
// express-oauth2-jwt-bearer's DPoP mode.
// Driven by test/interop (node_test.go), which starts the system, creates the clients and
// passes their credentials in the JSON file named by INTEROP_CONFIG.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

import * as client from 'openid-client'
import * as oauth from 'oauth4webapi'
import * as jose from 'jose'
import express from 'express'
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer'

const cfg = JSON.parse(readFileSync(process.env.INTEROP_CONFIG, 'utf8'))
const issuer = new URL(cfg.issuer)
const insecure = { [oauth.allowInsecureRequests]: true } // m2m dev serves plain HTTP on loopback

// privateKey imports a client's private JWK as a CryptoKey with its kid; Ed25519 keys import
// as WebCrypto "Ed25519", which both clients sign with RFC 9864's alg name "Ed25519".
async function privateKey(k) {
  return { key: await jose.importJWK(k.private_jwk, k.alg), kid: k.private_jwk.kid }
}

async function oauth4Discovery(algorithm) {
  const res = await oauth.discoveryRequest(issuer, { algorithm, ...insecure })
  return oauth.processDiscoveryResponse(issuer, res)
}

async function oauth4Token(as, clientId, clientAuth, parameters = {}) {
  const c = { client_id: clientId }
  const res = await oauth.clientCredentialsGrantRequest(as, c, clientAuth, new URLSearchParams({ scope: cfg.scope, ...parameters }), insecure)
  return oauth.processClientCredentialsResponse(as, c, res)
}

async function openidConfig(algorithm, clientId, clientAuth) {
  return client.discovery(issuer, clientId, undefined, clientAuth, { algorithm, execute: [client.allowInsecureRequests] })
}

// tokens collects one access token per way of getting it, verified below.
const tokens = {}

test('discovery through both metadata documents', async () => {
  for (const algorithm of ['oidc', 'oauth2']) {
    const as = await oauth4Discovery(algorithm)
    assert.equal(as.issuer, cfg.issuer)
    assert.equal(as.token_endpoint, cfg.issuer + '/oauth2/token')
    assert.equal(as.id_token_signing_alg_values_supported[0], cfg.signing_alg)
    assert.ok(as.token_endpoint_auth_signing_alg_values_supported.includes('Ed25519'))
    const config = await openidConfig(algorithm, cfg.basic.client_id, client.ClientSecretBasic(cfg.basic.client_secret))
    assert.equal(config.serverMetadata().jwks_uri, cfg.issuer + '/.well-known/jwks.json')
  }
})

test('openid-client: client_secret_basic, client_secret_post, private_key_jwt (ES256, RS256, Ed25519)', async () => {
  const basic = await openidConfig('oidc', cfg.basic.client_id, client.ClientSecretBasic(cfg.basic.client_secret))
  tokens['openid-client client_secret_basic'] = (await client.clientCredentialsGrant(basic, { scope: cfg.scope })).access_token
  const post = await openidConfig('oauth2', cfg.basic.client_id, client.ClientSecretPost(cfg.basic.client_secret))
  tokens['openid-client client_secret_post'] = (await client.clientCredentialsGrant(post, { scope: cfg.scope })).access_token
  for (const k of cfg.keys) {
    const config = await openidConfig('oauth2', k.client_id, client.PrivateKeyJwt(await privateKey(k)))
    tokens[`openid-client private_key_jwt ${k.alg}`] = (await client.clientCredentialsGrant(config, { scope: cfg.scope })).access_token
  }
})

test('oauth4webapi: client_secret_basic, client_secret_post, private_key_jwt (ES256, RS256, Ed25519)', async () => {
  const as = await oauth4Discovery('oauth2')
  tokens['oauth4webapi client_secret_basic'] = (await oauth4Token(as, cfg.basic.client_id, oauth.ClientSecretBasic(cfg.basic.client_secret))).access_token
  tokens['oauth4webapi client_secret_post'] = (await oauth4Token(as, cfg.basic.client_id, oauth.ClientSecretPost(cfg.basic.client_secret))).access_token
  for (const k of cfg.keys) {
    const key = await privateKey(k)
    const header = {}
    const auth = oauth.PrivateKeyJwt(key, { [oauth.modifyAssertion]: (h) => Object.assign(header, h) })
    tokens[`oauth4webapi private_key_jwt ${k.alg}`] = (await oauth4Token(as, k.client_id, auth)).access_token
    assert.equal(header.alg, k.alg, 'the assertion is signed with the fully-specified algorithm name')
  }
})

test('oauth4webapi: a private_key_jwt assertion that lives 1 hour', async () => {
  const as = await oauth4Discovery('oauth2')
  const k = cfg.keys[0]
  const auth = oauth.PrivateKeyJwt(await privateKey(k), { [oauth.modifyAssertion]: (_h, p) => { p.exp = p.iat + 3600 } })
  assert.ok((await oauth4Token(as, k.client_id, auth)).access_token)
})

test('RFC 9068 verification: jose jwtVerify (typ at+jwt)', async () => {
  const as = await oauth4Discovery('oidc')
  const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri))
  assert.ok(Object.keys(tokens).length >= 10, 'tokens were issued')
  for (const [name, token] of Object.entries(tokens)) {
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
      issuer: cfg.issuer, audience: cfg.audience, typ: 'at+jwt', algorithms: [cfg.signing_alg], requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
    })
    assert.equal(protectedHeader.alg, cfg.signing_alg, name)
    assert.equal(payload.sub, payload.client_id, name)
  }
  await assert.rejects(jose.jwtVerify(tokens['openid-client client_secret_basic'], jwks, { audience: 'other.interop' }), jose.errors.JWTClaimValidationFailed)
})

test('RFC 9068 verification: oauth4webapi validateJwtAccessToken', async () => {
  const as = await oauth4Discovery('oauth2')
  for (const [name, token] of Object.entries(tokens)) {
    const req = new Request('http://api.interop/things', { headers: { authorization: `Bearer ${token}` } })
    const claims = await oauth.validateJwtAccessToken(as, req, cfg.audience, insecure)
    assert.equal(claims.iss, cfg.issuer, name)
  }
})

test('RFC 9068 verification: express-oauth2-jwt-bearer (discovery, strict typ at+jwt, scopes)', async (t) => {
  const app = express()
  app.use(auth({ issuerBaseURL: cfg.issuer, audience: cfg.audience, strict: true }))
  app.get('/things', requiredScopes(cfg.scope), (req, res) => res.json({ sub: req.auth.payload.sub }))
  app.get('/admin', requiredScopes('things:admin'), (_req, res) => res.json({}))
  // The middleware's errors carry the RFC 6750 status and WWW-Authenticate; answer them quietly.
  app.use((err, _req, res, _next) => res.status(err.status ?? 500).set(err.headers ?? {}).end())
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  t.after(() => server.close())
  const base = `http://127.0.0.1:${server.address().port}`
  for (const [name, token] of Object.entries(tokens)) {
    const res = await fetch(`${base}/things`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200, `${name}: ${res.headers.get('www-authenticate')}`)
  }
  const some = tokens['oauth4webapi client_secret_post']
  assert.equal((await fetch(`${base}/things`)).status, 401)
  assert.equal((await fetch(`${base}/admin`, { headers: { authorization: `Bearer ${some}` } })).status, 403)
  assert.equal((await fetch(`${base}/things`, { headers: { authorization: `Bearer ${some.slice(0, -4)}AAAA` } })).status, 401)
})

// expectOAuthError awaits a rejection and checks it is the OAuth error the server sent.
async function expectOAuthError(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof oauth.ResponseBodyError, `${err.name}: ${err.message}`)
    assert.equal(err.error, code)
    assert.equal(err.status, status)
    assert.equal(err.response.headers.get('www-authenticate'), null)
    return true
  })
}

test('RFC 6749 §5.2 errors as OAuth errors (oauth4webapi ResponseBodyError, openid-client)', async () => {
  const as = await oauth4Discovery('oauth2')
  const wrong = cfg.basic.client_secret + 'x'
  await expectOAuthError(oauth4Token(as, cfg.basic.client_id, oauth.ClientSecretPost(wrong)), 'invalid_client', 400)
  const k = cfg.keys[2]
  const stranger = await jose.generateKeyPair('Ed25519')
  await expectOAuthError(oauth4Token(as, k.client_id, oauth.PrivateKeyJwt({ key: stranger.privateKey, kid: k.private_jwk.kid })), 'invalid_client', 400)
  await expectOAuthError(oauth4Token(as, cfg.basic.client_id, oauth.ClientSecretPost(cfg.basic.client_secret), { scope: 'things:delete' }), 'invalid_scope', 400)
  await expectOAuthError(oauth4Token(as, cfg.basic.client_id, oauth.ClientSecretPost(cfg.basic.client_secret), { resource: 'other.interop' }), 'invalid_target', 400)
  await expectOAuthError(oauth4Token(as, cfg.nothing.client_id, oauth.ClientSecretPost(cfg.nothing.client_secret), { scope: '' }), 'invalid_scope', 400)
  // With HTTP Basic the answer is 401 with its challenge (RFC 6749 §5.2), which oauth4webapi
  // surfaces as such.
  await assert.rejects(oauth4Token(as, cfg.basic.client_id, oauth.ClientSecretBasic(wrong)), (err) => {
    assert.ok(err instanceof oauth.WWWAuthenticateChallengeError, `${err.name}: ${err.message}`)
    assert.equal(err.status, 401)
    assert.equal(err.cause[0].scheme, 'basic')
    return true
  })
  const post = await openidConfig('oauth2', cfg.basic.client_id, client.ClientSecretPost(wrong))
  await assert.rejects(client.clientCredentialsGrant(post, { scope: cfg.scope }), (err) => {
    assert.ok(err instanceof client.ResponseBodyError, `${err.name}: ${err.message}`)
    assert.equal(err.error, 'invalid_client')
    assert.equal(err.status, 400)
    return true
  })
})

// dpopProof signs a proof by hand (a thief's key, another URL or method), as a client would.
async function dpopProof(keyPair, htm, htu, accessToken) {
  const jwk = await jose.exportJWK(keyPair.publicKey)
  const ath = jose.base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))))
  return new jose.SignJWT({ htm, htu, ath, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(keyPair.privateKey)
}

test('DPoP (RFC 9449): oauth4webapi and openid-client get bound tokens, express-oauth2-jwt-bearer verifies them', async (t) => {
  const as = await oauth4Discovery('oauth2')
  assert.ok(as.dpop_signing_alg_values_supported.includes('ES256'))

  // oauth4webapi: a DPoP handle on the token request binds the token to its key.
  const o4Key = await oauth.generateKeyPair('ES256')
  const c = { client_id: cfg.basic.client_id }
  const o4DPoP = oauth.DPoP(c, o4Key)
  const res = await oauth.clientCredentialsGrantRequest(as, c, oauth.ClientSecretBasic(cfg.basic.client_secret), new URLSearchParams({ scope: cfg.scope }), { DPoP: o4DPoP, ...insecure })
  const o4 = await oauth.processClientCredentialsResponse(as, c, res)
  assert.equal(o4.token_type, 'dpop')
  assert.equal(jose.decodeJwt(o4.access_token).cnf.jkt, await jose.calculateJwkThumbprint(await jose.exportJWK(o4Key.publicKey)))

  // openid-client: the same through its DPoP handle.
  const config = await openidConfig('oauth2', cfg.basic.client_id, client.ClientSecretBasic(cfg.basic.client_secret))
  const ocKey = await client.randomDPoPKeyPair('ES256')
  const ocDPoP = client.getDPoPHandle(config, ocKey)
  const oc = await client.clientCredentialsGrant(config, { scope: cfg.scope }, { DPoP: ocDPoP })
  assert.equal(oc.token_type, 'dpop')
  assert.equal(jose.decodeJwt(oc.access_token).cnf.jkt, await jose.calculateJwkThumbprint(await jose.exportJWK(ocKey.publicKey)))

  // The token server refuses a proof for another URL, and a replayed proof (invalid_dpop_proof).
  const tokenURL = as.token_endpoint
  const form = () => new URLSearchParams({ grant_type: 'client_credentials', scope: cfg.scope })
  const basicAuth = 'Basic ' + Buffer.from(`${encodeURIComponent(cfg.basic.client_id)}:${encodeURIComponent(cfg.basic.client_secret)}`).toString('base64')
  const tokenRequest = (proof) => fetch(tokenURL, { method: 'POST', body: form(), headers: { authorization: basicAuth, dpop: proof } })
  const raw = await jose.generateKeyPair('ES256')
  const once = await new jose.SignJWT({ htm: 'POST', htu: tokenURL, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await jose.exportJWK(raw.publicKey) }).setIssuedAt().sign(raw.privateKey)
  assert.equal((await tokenRequest(once)).status, 200)
  const replay = await tokenRequest(once)
  assert.equal(replay.status, 400)
  assert.equal((await replay.json()).error, 'invalid_dpop_proof')
  const elsewhere = await tokenRequest(await new jose.SignJWT({ htm: 'POST', htu: cfg.issuer + '/oauth2/introspect', jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await jose.exportJWK(raw.publicKey) }).setIssuedAt().sign(raw.privateKey))
  assert.equal((await elsewhere.json()).error, 'invalid_dpop_proof')

  // express-oauth2-jwt-bearer in DPoP-required mode.
  const app = express()
  app.use(auth({ issuerBaseURL: cfg.issuer, audience: cfg.audience, strict: true, dpop: { enabled: true, required: true } }))
  app.get('/things', requiredScopes(cfg.scope), (req, res) => res.json({ jkt: req.auth.payload.cnf.jkt }))
  app.use((err, _req, res, _next) => res.status(err.status ?? 500).set(err.headers ?? {}).end())
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  t.after(() => server.close())
  const url = new URL(`http://127.0.0.1:${server.address().port}/things`)

  const r1 = await oauth.protectedResourceRequest(o4.access_token, 'GET', url, undefined, undefined, { DPoP: o4DPoP, ...insecure })
  assert.equal(r1.status, 200, r1.headers.get('www-authenticate'))
  const r2 = await client.fetchProtectedResource(config, oc.access_token, url, 'GET', undefined, undefined, { DPoP: ocDPoP })
  assert.equal(r2.status, 200, r2.headers.get('www-authenticate'))

  const thief = await jose.generateKeyPair('ES256')
  const refused = {
    'bound token as Bearer': { authorization: `Bearer ${o4.access_token}` },
    'no proof': { authorization: `DPoP ${o4.access_token}` },
    'stolen token, proof by another key': { authorization: `DPoP ${o4.access_token}`, dpop: await dpopProof(thief, 'GET', url.href, o4.access_token) },
    'proof for another URL': { authorization: `DPoP ${o4.access_token}`, dpop: await dpopProof(o4Key, 'GET', url.href + '/other', o4.access_token) },
    'proof for another method': { authorization: `DPoP ${o4.access_token}`, dpop: await dpopProof(o4Key, 'POST', url.href, o4.access_token) },
    'proof for another token': { authorization: `DPoP ${o4.access_token}`, dpop: await dpopProof(o4Key, 'GET', url.href, oc.access_token) },
  }
  for (const [name, headers] of Object.entries(refused)) {
    const r = await fetch(url, { headers })
    assert.ok(r.status === 401 || r.status === 400, `${name}: ${r.status}`)
  }
  // A proof by the right key for this request passes: the refusals above are the checks.
  const ok = await fetch(url, { headers: { authorization: `DPoP ${o4.access_token}`, dpop: await dpopProof(o4Key, 'GET', url.href, o4.access_token) } })
  assert.equal(ok.status, 200)
})
