// Renews the session's tokens shortly before they expire, while a page is open.
//
// Several tabs share one session through localStorage. A refresh token works once (using it
// twice revokes the session), so exactly one tab may renew: each tab wakes at the renewal time
// (with a little jitter), takes the Web Lock "finhub.renewal", and renews only if no tab did
// while it waited. The others pick the new tokens up through the `storage` event.
//
// Renewal is not activity: a page left open still reaches the idle timeout, as the contract
// wants.

import { call } from './api.js';
import { readTokens, saveTokens } from './storage.js';

const RETRY_MS = 5_000;
let timer = null;

export function cancelRenewal() {
  clearTimeout(timer);
  timer = null;
}

// `onEnded(error)` is told when the server says the session is over.
export function scheduleRenewal(onEnded) {
  cancelRenewal();
  const tokens = readTokens();
  // A session awaiting its second factor, or a password reset's, cannot be renewed.
  if (!tokens || tokens.twoFactorRequired || tokens.passwordReset) return;
  const jitter = Math.random() * 1_000;
  timer = setTimeout(() => renew(onEnded), Math.max(0, tokens.renewAt - Date.now()) + jitter);
}

async function renew(onEnded) {
  let outcome = 'done';
  const attempt = async () => {
    const tokens = readTokens();
    // Gone (logged out elsewhere), awaiting 2FA, or renewed by another tab meanwhile.
    if (!tokens || tokens.twoFactorRequired || tokens.renewAt > Date.now()) return;
    try {
      saveTokens(await call('POST', '/auth/token/refresh', { body: { refreshToken: tokens.refreshToken } }));
    } catch (error) {
      if (error.code === 'SESSION_EXPIRED' || error.code === 'UNAUTHENTICATED') {
        outcome = 'ended';
        onEnded(error);
      } else {
        outcome = 'retry';
      }
    }
  };
  if (navigator.locks) {
    await navigator.locks.request('finhub.renewal', attempt);
  } else {
    await attempt();
  }
  if (outcome === 'retry') {
    timer = setTimeout(() => renew(onEnded), RETRY_MS);
  } else if (outcome === 'done') {
    scheduleRenewal(onEnded);
  }
}
