#!/usr/bin/env python3
"""The billing API with PyJWT (Debian: python3-jwt python3-cryptography): each route accepts only
access tokens of the token server for audience billing.billing that carry the route's scope.

    python3 examples/python/api.py      # from the repository root, with make dev running
"""
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt  # PyJWT

AUDIENCE = "billing.billing"
ROUTES = {("GET", "/invoices"): "invoices:read", ("POST", "/invoices"): "invoices:write"}


def issuer():
    """The issuer exactly as in credential Secrets; with make dev, what m2m dev wrote."""
    if os.environ.get("M2M_ISSUER"):
        return os.environ["M2M_ISSUER"]
    with open(".dev/credentials/payments/billing-worker/issuer") as f:
        return f.read().strip()


ISSUER = issuer()
with urllib.request.urlopen(ISSUER + "/.well-known/oauth-authorization-server") as r:
    JWKS_URI = json.load(r)["jwks_uri"]  # RFC 8414 metadata
JWKS = jwt.PyJWKClient(JWKS_URI)  # keys cached; refetched when a token names an unknown kid
ALGORITHMS = ["ES256", "RS256", "EdDSA"]  # what the token server signs with; never HS* or none


def has_scope(held, required):
    """The token server's wildcard rule: invoices:* holds invoices:read."""
    for s in held:
        if s == required or (s.endswith(":*") and required.startswith(s[:-1])):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    def handle_route(self, method):
        required = ROUTES.get((method, self.path))
        if required is None:
            return self.answer(404, "not found\n")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.answer(401, "", 'Bearer realm="billing"')
        token = auth[len("Bearer "):]
        try:
            if jwt.get_unverified_header(token).get("typ") != "at+jwt":  # RFC 9068 §4
                raise jwt.InvalidTokenError("not an access token")
            key = JWKS.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError:
            return self.answer(401, "", 'Bearer realm="billing", error="invalid_token"')
        if not has_scope(claims.get("scope", "").split(), required):
            return self.answer(403, "", f'Bearer realm="billing", error="insufficient_scope", scope="{required}"')
        self.answer(200 if method == "GET" else 201, f"invoices for {claims['namespace']}/{claims['client_id']}\n")

    def answer(self, status, body, challenge=None):
        self.send_response(status)
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body.encode())

    def do_GET(self):
        self.handle_route("GET")

    def do_POST(self):
        self.handle_route("POST")


if __name__ == "__main__":
    host, port = os.environ.get("BILLING_ADDR", "127.0.0.1:8081").split(":")
    print(f"billing API on http://{host}:{port} (issuer {ISSUER})", flush=True)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
