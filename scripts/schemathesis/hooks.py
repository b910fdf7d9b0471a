"""Schemathesis hooks for finhub-auth: signs the generated calls in, and makes some positive
cases meaningful (a real refresh token, a real 2FA code, the caller's own session id).

Loaded through SCHEMATHESIS_HOOKS by scripts/schemathesis/run, which starts the service and sets:

    FINHUB_ST_BASE_URL      the service's origin, e.g. http://127.0.0.1:41234
    FINHUB_ST_OUTBOX        the demo's outbox file (2FA codes are read from it)
    FINHUB_ST_READER        customer whose one shared session serves the read-only calls [alice]
    FINHUB_ST_ENDER         customer whose fresh sessions serve the calls that end sessions [carol]
    FINHUB_ST_PENDING       customer with 2FA whose fresh pending sessions serve the 2FA calls [bob]
    FINHUB_ST_PASSWORD      their password [finhub-demo-2026]

Why three customers, and when a token is fresh:

* The read-only calls (customers/me, sessions, devices, security-events) share one ACTIVE
  session of the reader, cached by Schemathesis. Nothing the run generates can end that session:
  the calls that end sessions use another customer. If it ends all the same (idle timeout, a
  restart), Schemathesis' reactive re-authentication (retry_on=[401]) logs in again and replays
  the call once.
* The calls that can end sessions (logout, logout {"scope": "all"}, DELETE sessions/{id},
  DELETE customers/me/devices/{id}) get a fresh session of their own customer per case, so a
  generated logout never spoils the token of another case, and `scope: all` only ends sessions
  of a customer no other kind of case uses.
* The 2FA calls get a fresh TWO_FACTOR_PENDING session of the 2FA customer per case: a pending
  session allows few sends, a right code makes it ACTIVE and rotates its tokens.

Cases generated without credentials on purpose (Schemathesis' negative security tests) are left
alone: Schemathesis does not ask an auth provider for them.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid

import requests
import schemathesis

BASE_URL = os.environ.get("FINHUB_ST_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
OUTBOX = os.environ.get("FINHUB_ST_OUTBOX", "./data/outbox.jsonl")
PASSWORD = os.environ.get("FINHUB_ST_PASSWORD", "finhub-demo-2026")
READER = os.environ.get("FINHUB_ST_READER", "alice@demo.finhub.test")
ENDER = os.environ.get("FINHUB_ST_ENDER", "carol@demo.finhub.test")
PENDING = os.environ.get("FINHUB_ST_PENDING", "bob@demo.finhub.test")

READ_ONLY = {
    "GET /api/v1/customers/me",
    "GET /api/v1/sessions",
    "GET /api/v1/customers/me/devices",
    "GET /api/v1/customers/me/security-events",
}
ENDS_SESSIONS = {
    "POST /api/v1/auth/logout",
    "DELETE /api/v1/sessions/{id}",
    "DELETE /api/v1/customers/me/devices/{id}",
}
TWO_FACTOR = {
    "POST /api/v1/auth/2fa/initiate",
    "POST /api/v1/auth/2fa/verify",
}

_http = threading.local()


def _session() -> requests.Session:
    s = getattr(_http, "session", None)
    if s is None:
        s = _http.session = requests.Session()
    return s


def _label(operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def login(username: str, fingerprint: str | None = None) -> dict:
    """A fresh session; the token response as the service sends it."""
    body: dict = {"username": username, "password": PASSWORD}
    if fingerprint is not None:
        body["device"] = {"fingerprint": fingerprint, "name": "schemathesis"}
    for attempt in range(3):
        r = _session().post(f"{BASE_URL}/api/v1/auth/token", json=body, timeout=10)
        if r.status_code == 200:
            return r.json()
        # 503 (hashing queue full) and 429 say "retry"; anything else is a setup error.
        if r.status_code not in (429, 503) or attempt == 2:
            raise RuntimeError(f"login as {username} answered {r.status_code}: {r.text[:300]}")
        time.sleep(float(r.headers.get("retry-after", "1")))
    raise AssertionError("unreachable")


def _cache_key(case, context) -> str:
    # One shared entry for the read-only calls; one entry per case (so a fresh login) otherwise.
    label = _label(context.operation)
    return "reader" if label in READ_ONLY else f"{label} {case.id}"


@schemathesis.auth(refresh_interval=600, cache_by_key=_cache_key, retry_on=[401]).apply_to(
    lambda ctx: _label(ctx.operation) in READ_ONLY | ENDS_SESSIONS | TWO_FACTOR
)
class FinhubBearer:
    def get(self, case, context):
        label = _label(context.operation)
        if label in READ_ONLY:
            return login(READER)
        if label in TWO_FACTOR:
            return login(PENDING)
        if label in ENDS_SESSIONS:
            # A device of its own, so that DELETE devices/{id} can name a real one.
            return login(ENDER, fingerprint=f"schemathesis-{uuid.uuid4()}")
        return None

    def set(self, case, data, context):
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = f"Bearer {data['bffToken']}"


# Every other positive case of these operations gets a real value where a random one can only be
# refused; the others keep the generated values, so both paths are exercised.
_turns = {label: itertools.count() for label in (
    "POST /api/v1/auth/token",
    "POST /api/v1/auth/token/refresh",
    "POST /api/v1/auth/2fa/verify",
    "DELETE /api/v1/sessions/{id}",
    "DELETE /api/v1/customers/me/devices/{id}",
)}


def _positive(case) -> bool:
    meta = case.meta
    if meta is None:
        return True
    return meta.generation.mode.is_positive and not any(
        component.mode.is_negative for component in meta.components.values()
    )


def _bearer(case) -> str | None:
    value = (case.headers or {}).get("Authorization") or ""
    return value[len("Bearer "):] if value.startswith("Bearer ") else None


def _code_for(challenge_id: str) -> str | None:
    try:
        with open(OUTBOX, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("challengeId") == challenge_id:
            return message.get("code")
    return None


@schemathesis.hook
def before_call(context, case, kwargs):
    label = _label(case.operation)
    turns = _turns.get(label)
    if turns is None or not _positive(case) or next(turns) % 2:
        return
    if label == "POST /api/v1/auth/token" and isinstance(case.body, dict):
        case.body = {**case.body, "username": ENDER, "password": PASSWORD}
    elif label == "POST /api/v1/auth/token/refresh" and isinstance(case.body, dict):
        case.body = {**case.body, "refreshToken": login(ENDER)["refreshToken"]}
    elif label == "POST /api/v1/auth/2fa/verify" and isinstance(case.body, dict):
        token = _bearer(case)
        if token is None:
            return
        r = _session().post(
            f"{BASE_URL}/api/v1/auth/2fa/initiate",
            headers={"Authorization": f"Bearer {token}"},
            json={},
            timeout=10,
        )
        if r.status_code != 202:
            return
        challenge = r.json()["challengeId"]
        code = _code_for(challenge)
        if code is not None:
            case.body = {**case.body, "challengeId": challenge, "code": code}
    elif label == "DELETE /api/v1/sessions/{id}":
        token = _bearer(case)
        if token is None:
            return
        r = _session().get(
            f"{BASE_URL}/api/v1/customers/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        if r.status_code == 200:
            case.path_parameters = {**(case.path_parameters or {}), "id": r.json()["session"]["id"]}
    elif label == "DELETE /api/v1/customers/me/devices/{id}":
        token = _bearer(case)
        if token is None:
            return
        r = _session().get(
            f"{BASE_URL}/api/v1/customers/me/devices",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        devices = r.json().get("devices", []) if r.status_code == 200 else []
        if devices:
            case.path_parameters = {**(case.path_parameters or {}), "id": devices[0]["id"]}
