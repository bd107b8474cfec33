#!/usr/bin/env python3
"""A client of the billing API: gets an access token with the client credentials grant and calls
GET /invoices. The credentials are files of a directory (a mounted credential Secret, or what
m2m dev writes: .dev/credentials/<namespace>/<name>), read again for every token request so that
a rotated secret is picked up. Standard library only.

    python3 examples/python/client.py      # from the repository root, with make dev running
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CREDENTIALS = os.environ.get("M2M_CREDENTIALS", ".dev/credentials/payments/billing-worker")
API = os.environ.get("BILLING_API", "http://127.0.0.1:8081")

_cached = {"token": None, "expires_at": 0.0}


def read(key):
    with open(os.path.join(CREDENTIALS, key)) as f:
        return f.read().strip()


def token():
    if _cached["token"] and time.time() < _cached["expires_at"] - 30:
        return _cached["token"]
    client_id, secret = read("client_id"), read("client_secret")
    # client_secret_basic: RFC 6749 §2.3.1 form-encodes id and secret before base64.
    basic = base64.b64encode(f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()).decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "audience": read("audience")}).encode()
    req = urllib.request.Request(read("token_url"), data=body, headers={"Authorization": "Basic " + basic})
    try:
        with urllib.request.urlopen(req) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as e:
        err = json.load(e)
        sys.exit(f"token endpoint: {e.code} {err.get('error')}: {err.get('error_description', '')}")
    _cached.update(token=answer["access_token"], expires_at=time.time() + answer["expires_in"])
    return _cached["token"]


def call():
    for attempt in (1, 2):
        req = urllib.request.Request(API + "/invoices", headers={"Authorization": "Bearer " + token()})
        try:
            with urllib.request.urlopen(req) as resp:
                print(resp.status, API + "/invoices")
                print(resp.read().decode(), end="")
                return 0
        except urllib.error.HTTPError as e:
            if e.code == 401 and attempt == 1:  # a cached token the API no longer accepts
                _cached["token"] = None
                continue
            print(e.code, API + "/invoices", e.headers.get("WWW-Authenticate", ""))
            return 1


if __name__ == "__main__":
    sys.exit(call())
