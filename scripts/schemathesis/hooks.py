"""Schemathesis hooks for finhub-auth: signs the generated calls in, and makes some positive
cases meaningful (a real login, refresh token, 2FA code, session id or device id).

Loaded through SCHEMATHESIS_HOOKS by scripts/schemathesis/run, which starts the service and sets:

    FINHUB_ST_BASE_URL      the service's origin, e.g. http://127.0.0.1:41234
    FINHUB_ST_OUTBOX        the service's outbox file (2FA codes are read from it)
    FINHUB_ST_READER        customer whose one shared session serves the read-only calls [alice]
    FINHUB_ST_ENDER         customer whose fresh sessions serve the calls that end sessions [carol]
    FINHUB_ST_PENDING       customer with 2FA whose fresh pending sessions serve the 2FA calls [bob]
    FINHUB_ST_OWNER         customer without 2FA whose fresh sessions serve the calls that change
                            credentials (factors, recovery codes, password, step-up) [dave]
    FINHUB_ST_RESETTER      customer without 2FA whose password resets serve the reset's
                            completion [erin]
    FINHUB_ST_PASSWORD      their password [finhub-demo-2026]

Which token a case gets, and when:

* The auth provider below only says *which kind* of session a case needs (it puts a placeholder
  in `Authorization`); `before_call` swaps in a real token right before the request is sent.
  Schemathesis asks auth providers when it generates a case, and its coverage phase generates all
  of an operation's cases before sending the first: a token fetched then could be ended (by a
  generated `logout {"scope": "all"}`) before its own case is sent.
* The read-only calls (customers/me, sessions, devices, security-events) share one ACTIVE
  session of the reader. Nothing the run generates can end it, because the calls that end
  sessions act on another customer. Should it end all the same (idle timeout, a restart),
  `after_call` drops it on a 401 and Schemathesis' reactive re-authentication (retry_on=[401])
  replays the call once, which then logs in again.
* The calls that can end sessions (logout, also with `scope: all`, DELETE sessions/{id}, DELETE
  customers/me/devices/{id}) get a fresh session of their own customer per case (with a device
  of its own), so a generated logout never ends a session another case relies on. Two workers
  could still race (one's `scope: all` between the other's login and call); that 401 is replayed
  with a fresh login too.
* The 2FA calls get a fresh TWO_FACTOR_PENDING session of the 2FA customer per case: a pending
  session allows few sends, and a right code makes it ACTIVE and rotates its tokens. One
  read-only call in four gets such a session too (restricted view, TWO_FACTOR_REQUIRED).
* The calls that change the customer's own credentials (enrolling, confirming, renaming and
  removing factors, recovery codes, the password, step-up) get a fresh ACTIVE session of a
  customer of their own per case, who holds no factor: generated values cannot confirm a factor
  or name the current password, so that customer stays without 2FA and every case reaches the
  operation's own checks (validation, recent authentication, 404 for unknown factors) rather
  than a 401. Every other step-up verification is real (a PASSWORD step-up, then its password).
* A password reset's completion gets a fresh PASSWORD_RESET session per case, of a customer of
  its own without 2FA: a reset asked for, its code read from the outbox, and verified. A
  generated new password the policy accepts completes the reset, which ends that customer's
  sessions (the next case opens another) and changes a password nothing else uses.

Cases that Schemathesis generates without, or with broken, credentials on purpose (negative
security tests) are left alone: it does not ask auth providers for them.
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
OWNER = os.environ.get("FINHUB_ST_OWNER", "dave@demo.finhub.test")
RESETTER = os.environ.get("FINHUB_ST_RESETTER", "erin@demo.finhub.test")

ROLES = {
    "GET /api/v1/customers/me": "reader",
    "GET /api/v1/sessions": "reader",
    "GET /api/v1/customers/me/devices": "reader",
    "GET /api/v1/customers/me/security-events": "reader",
    "GET /api/v1/customers/me/factors": "reader",
    "GET /api/v1/auth/2fa/challenges/{challengeId}": "pending",
    "POST /api/v1/customers/me/factors": "owner",
    "POST /api/v1/customers/me/factors/{factorId}/confirm": "owner",
    "PATCH /api/v1/customers/me/factors/{factorId}": "owner",
    "DELETE /api/v1/customers/me/factors/{factorId}": "owner",
    "POST /api/v1/customers/me/recovery-codes": "owner",
    "POST /api/v1/customers/me/password": "owner",
    "POST /api/v1/auth/step-up": "owner",
    "POST /api/v1/auth/step-up/verify": "owner",
    "POST /api/v1/auth/password-reset/complete": "resetter",
    "POST /api/v1/auth/logout": "ender",
    "DELETE /api/v1/sessions/{id}": "ender",
    "DELETE /api/v1/customers/me/devices/{id}": "ender",
    "POST /api/v1/auth/2fa/initiate": "pending",
    "POST /api/v1/auth/2fa/verify": "pending",
}
PLACEHOLDER = "finhub-st-role:"

_local = threading.local()


def _http() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _label(operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def login(username: str, fingerprint: str | None = None) -> dict:
    """A fresh session: the token response as the service sends it."""
    body: dict = {"username": username, "password": PASSWORD}
    if fingerprint is not None:
        body["device"] = {"fingerprint": fingerprint, "name": "schemathesis"}
    for attempt in range(3):
        r = _http().post(f"{BASE_URL}/api/v1/auth/token", json=body, timeout=10)
        if r.status_code == 200:
            return r.json()
        # 503 (hashing queue full) and 429 ask for a retry; anything else is a broken setup.
        if r.status_code not in (429, 503) or attempt == 2:
            raise RuntimeError(f"login as {username} answered {r.status_code}: {r.text[:300]}")
        time.sleep(float(r.headers.get("retry-after", "1")))
    raise AssertionError("unreachable")


def reset_session(username: str) -> str:
    """A fresh PASSWORD_RESET session: a reset asked for, and its code from the outbox verified."""
    r = _http().post(f"{BASE_URL}/api/v1/auth/password-reset", json={"username": username}, timeout=10)
    if r.status_code != 202:
        raise RuntimeError(f"a reset for {username} answered {r.status_code}: {r.text[:300]}")
    reset_id = r.json()["resetId"]
    # The answer goes out before the code is queued: it reaches the outbox a moment later.
    deadline = time.monotonic() + 5
    while (code := _outbox_code("resetId", reset_id)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no code in the outbox for reset {reset_id}")
        time.sleep(0.02)
    r = _http().post(
        f"{BASE_URL}/api/v1/auth/password-reset/verify",
        json={"resetId": reset_id, "code": code},
        timeout=10,
    )
    if r.status_code != 200:
        raise RuntimeError(f"a reset's code answered {r.status_code}: {r.text[:300]}")
    return r.json()["bffToken"]


_reader: dict | None = None
_reader_lock = threading.Lock()


def _reader_token() -> str:
    global _reader
    with _reader_lock:
        if _reader is None:
            _reader = login(READER)
        return _reader["bffToken"]


def _drop_reader(token: str) -> None:
    global _reader
    with _reader_lock:
        if _reader is not None and _reader["bffToken"] == token:
            _reader = None


_reader_turns = {label: itertools.count() for label, role in ROLES.items() if role == "reader"}


def token_for(label: str, role: str, counted: bool = True) -> str:
    if role == "reader":
        # One read-only call in four is made by a session still awaiting 2FA: the restricted
        # view of customers/me, and TWO_FACTOR_REQUIRED from the account-security calls.
        if counted and next(_reader_turns[label]) % 4 == 3:
            return login(PENDING)["bffToken"]
        return _reader_token()
    if role == "pending":
        return login(PENDING)["bffToken"]
    if role == "owner":
        return login(OWNER)["bffToken"]
    if role == "resetter":
        return reset_session(RESETTER)
    return login(ENDER, fingerprint=f"schemathesis-{uuid.uuid4()}")["bffToken"]


# Cached per operation (the role never changes), which also makes it a provider Schemathesis
# re-authenticates through: a 401 is replayed once with the placeholder set again.
@schemathesis.auth(
    refresh_interval=3600,
    cache_by_key=lambda case, context: _label(context.operation),
    retry_on=[401],
).apply_to(lambda context: _label(context.operation) in ROLES)
class FinhubBearer:
    def get(self, case, context):
        return ROLES.get(_label(context.operation))

    def set(self, case, data, context):
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = f"Bearer {PLACEHOLDER}{data}"


def _bearer(case) -> str | None:
    value = (case.headers or {}).get("Authorization") or ""
    return value[len("Bearer "):] if isinstance(value, str) and value.startswith("Bearer ") else None


def _positive(case) -> bool:
    meta = case.meta
    if meta is None:
        return True
    return meta.generation.mode.is_positive and not any(
        component.mode.is_negative for component in meta.components.values()
    )


def _challenge(auth: dict) -> str | None:
    """A 2FA challenge opened for the session in `auth` (its default factor), or None if refused."""
    r = _http().post(f"{BASE_URL}/api/v1/auth/2fa/initiate", headers=auth, json={}, timeout=10)
    return r.json()["challengeId"] if r.status_code == 202 else None


def _outbox_code(key: str, value: str) -> str | None:
    """The code of the newest outbox line whose `key` is `value`."""
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
        if message.get(key) == value:
            return message.get("code")
    return None


# Every other positive case of these operations gets a real value where a generated one can only
# be refused (401 or 404); the others keep the generated values, so both paths are exercised.
_turns = {
    label: itertools.count()
    for label in (
        "POST /api/v1/auth/token",
        "POST /api/v1/auth/token/refresh",
        "POST /api/v1/auth/2fa/verify",
        "DELETE /api/v1/sessions/{id}",
        "DELETE /api/v1/customers/me/devices/{id}",
        "POST /api/v1/auth/step-up/verify",
        "GET /api/v1/auth/2fa/challenges/{challengeId}",
        "POST /api/v1/customers/me/factors/{factorId}/confirm",
    )
}


def _make_real(label: str, case, turn: int) -> None:
    token = _bearer(case)
    auth = {"Authorization": f"Bearer {token}"}
    if label == "POST /api/v1/auth/token":
        if isinstance(case.body, dict):
            case.body = {**case.body, "username": ENDER, "password": PASSWORD}
    elif label == "POST /api/v1/auth/token/refresh":
        if isinstance(case.body, dict):
            # Mostly an ACTIVE session's; now and then a pending one's (TWO_FACTOR_REQUIRED).
            customer = PENDING if turn % 6 == 4 else ENDER
            case.body = {**case.body, "refreshToken": login(customer)["refreshToken"]}
    elif label == "POST /api/v1/auth/2fa/verify":
        if token is None or not isinstance(case.body, dict):
            return
        challenge = _challenge(auth)
        if challenge is None:
            return
        code = _outbox_code("challengeId", challenge)
        if code is not None:
            case.body = {**case.body, "challengeId": challenge, "code": code}
    elif label == "DELETE /api/v1/sessions/{id}":
        if token is None:
            return
        r = _http().get(f"{BASE_URL}/api/v1/customers/me", headers=auth, timeout=10)
        if r.status_code == 200:
            case.path_parameters = {**(case.path_parameters or {}), "id": r.json()["session"]["id"]}
    elif label == "DELETE /api/v1/customers/me/devices/{id}":
        if token is None:
            return
        r = _http().get(f"{BASE_URL}/api/v1/customers/me/devices", headers=auth, timeout=10)
        devices = r.json().get("devices", []) if r.status_code == 200 else []
        if devices:
            case.path_parameters = {**(case.path_parameters or {}), "id": devices[0]["id"]}
    elif label == "POST /api/v1/auth/step-up/verify":
        if token is None or not isinstance(case.body, dict):
            return
        r = _http().post(
            f"{BASE_URL}/api/v1/auth/step-up", headers=auth, json={"method": "PASSWORD"}, timeout=10
        )
        if r.status_code == 202:
            case.body = {"challengeId": r.json()["challengeId"], "password": PASSWORD}
    elif label == "GET /api/v1/auth/2fa/challenges/{challengeId}":
        if token is None:
            return
        challenge = _challenge(auth)
        if challenge is not None:
            case.path_parameters = {**(case.path_parameters or {}), "challengeId": challenge}
    elif label == "POST /api/v1/customers/me/factors/{factorId}/confirm":
        # An app enrolled and not confirmed: the generated code is judged against it.
        if token is None:
            return
        r = _http().post(
            f"{BASE_URL}/api/v1/customers/me/factors", headers=auth, json={"method": "TOTP"}, timeout=10
        )
        if r.status_code == 201:
            case.path_parameters = {**(case.path_parameters or {}), "factorId": r.json()["id"]}


@schemathesis.hook
def before_call(context, case, kwargs):
    label = _label(case.operation)
    token = _bearer(case)
    # Probes of other methods on the operation's path (405) take a token but no turn.
    own_method = case.method.upper() == case.operation.method.upper()
    if token is not None and token.startswith(PLACEHOLDER):
        role = token[len(PLACEHOLDER):]
        case.headers["Authorization"] = f"Bearer {token_for(label, role, own_method)}"
    turns = _turns.get(label)
    if turns is not None and own_method and _positive(case):
        turn = next(turns)
        if turn % 2 == 0:
            _make_real(label, case, turn)


@schemathesis.hook
def after_call(context, case, response):
    if response.status_code == 401 and ROLES.get(_label(case.operation)) == "reader":
        token = _bearer(case)
        if token is not None:
            _drop_reader(token)
