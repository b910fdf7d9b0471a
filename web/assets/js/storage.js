// What the client keeps in localStorage, under these keys (docs/web.md lists them). The
// session's keys are all removed at logout; the device id stays.

export const KEYS = {
  bffToken: 'finhub.bffToken',
  refreshToken: 'finhub.refreshToken',
  // When the session ends unless renewed (RFC 3339, the server's clock), for display.
  expiresAt: 'finhub.expiresAt',
  // When to renew (milliseconds on this browser's clock), shortly before the end.
  renewAt: 'finhub.renewAt',
  sessionId: 'finhub.sessionId',
  // "true" while the session awaits its second factor.
  twoFactorRequired: 'finhub.twoFactorRequired',
  // The code last sent for this session: where it went, until when, and when to resend.
  challenge: 'finhub.challenge',
  // "true" while the session is a password reset's (it may only set the new password).
  passwordReset: 'finhub.passwordReset',
  // "true" while the session must first add a second factor (2FA required of everyone).
  enrolmentRequired: 'finhub.enrolmentRequired',
};

// The reset asked for on the reset page (its resetId, expiry and the username typed), in this
// tab's sessionStorage only: gone with the tab, after a sign-in, and once it expires.
const RESET = 'finhub.reset';

export const DEVICE_ID = 'finhub.deviceId';

// Renew two minutes before the end (browsers may run a hidden tab's timers up to a minute
// late), or a quarter of the lifetime before it for short sessions.
const RENEW_MARGIN_MS = 120_000;

// Stores the tokens of a login, a verification or a renewal. The bffToken is written last:
// other tabs react to its change, and by then every other key is current.
export function saveTokens(tokens) {
  const lifetime = tokens.expiresIn * 1000;
  const renewAt = Date.now() + lifetime - Math.min(RENEW_MARGIN_MS, lifetime / 4);
  localStorage.setItem(KEYS.refreshToken, tokens.refreshToken);
  localStorage.setItem(KEYS.expiresAt, tokens.expiresAt);
  localStorage.setItem(KEYS.renewAt, String(Math.round(renewAt)));
  localStorage.setItem(KEYS.sessionId, tokens.sessionId);
  localStorage.setItem(KEYS.twoFactorRequired, String(tokens.twoFactorRequired === true));
  localStorage.setItem(KEYS.enrolmentRequired, String(tokens.enrolmentRequired === true));
  localStorage.setItem(KEYS.bffToken, tokens.bffToken);
}

export function readTokens() {
  const bffToken = localStorage.getItem(KEYS.bffToken);
  if (!bffToken) return null;
  return {
    bffToken,
    refreshToken: localStorage.getItem(KEYS.refreshToken),
    expiresAt: localStorage.getItem(KEYS.expiresAt),
    renewAt: Number(localStorage.getItem(KEYS.renewAt) ?? 0),
    sessionId: localStorage.getItem(KEYS.sessionId),
    twoFactorRequired: localStorage.getItem(KEYS.twoFactorRequired) === 'true',
    passwordReset: localStorage.getItem(KEYS.passwordReset) === 'true',
    enrolmentRequired: localStorage.getItem(KEYS.enrolmentRequired) === 'true',
  };
}

// Marks the session about to be saved as a password reset's, or as a login's.
export function markPasswordReset(resetting) {
  if (resetting) localStorage.setItem(KEYS.passwordReset, 'true');
  else localStorage.removeItem(KEYS.passwordReset);
}

// Remembers the reset just asked for, or forgets it (`null`).
export function saveReset(reset) {
  if (reset) sessionStorage.setItem(RESET, JSON.stringify(reset));
  else sessionStorage.removeItem(RESET);
}

// The reset asked for, while its code is valid; an expired one is forgotten.
export function readReset() {
  try {
    const reset = JSON.parse(sessionStorage.getItem(RESET) ?? 'null');
    if (reset && Date.parse(reset.expiresAt) > Date.now()) return reset;
  } catch {
    // Unreadable: forgotten below.
  }
  sessionStorage.removeItem(RESET);
  return null;
}

// Forgets the session; the bffToken goes last, for the same reason it is written last.
export function clearSession() {
  for (const key of Object.values(KEYS)) {
    if (key !== KEYS.bffToken) localStorage.removeItem(key);
  }
  localStorage.removeItem(KEYS.bffToken);
}

// Remembers the code just sent for the session `sessionId`.
export function saveChallenge(challenge, sessionId) {
  localStorage.setItem(KEYS.challenge, JSON.stringify({ ...challenge, sessionId }));
}

// The code sent for the session `sessionId`, if it is still valid.
export function readChallenge(sessionId) {
  try {
    const challenge = JSON.parse(localStorage.getItem(KEYS.challenge) ?? 'null');
    const current = challenge?.sessionId === sessionId && Date.parse(challenge.expiresAt) > Date.now();
    return current ? challenge : null;
  } catch {
    return null;
  }
}

export function forgetChallenge() {
  localStorage.removeItem(KEYS.challenge);
}
