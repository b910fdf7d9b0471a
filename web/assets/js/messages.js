// A sentence for every error a page can meet: never a raw code, a status or a stack trace.

import { formatTime, formatWait } from './format.js';

export function messageFor(error) {
  const p = error.problem ?? {};
  switch (error.code) {
    case 'INVALID_CREDENTIALS':
      return 'That username or password is not right. Check both and try again.';
    case 'ACCOUNT_LOCKED':
      return p.lockedUntil
        ? `Your account is locked after too many failed attempts. You can try again at ${formatTime(p.lockedUntil)}.`
        : 'Your account is locked. If you locked it yourself, reset your password to unlock it; otherwise contact FinHub support.';
    case 'RATE_LIMITED':
      return `Too many attempts in a short time. Please wait ${formatWait(error.retryAfter)} and try again.`;
    case 'INVALID_2FA_CODE': {
      const left = p.attemptsRemaining;
      if (typeof left !== 'number') return 'That code is not right. Check it and try again.';
      if (left === 0) return 'That code is not right, and that was the last try for it. Ask for a new code.';
      return left === 1
        ? 'That code is not right. You have 1 try left.'
        : `That code is not right. You have ${left} tries left.`;
    }
    case '2FA_CODE_EXPIRED':
      return 'That code has expired. Send a new code and enter it soon after it arrives.';
    case 'TOO_MANY_2FA_ATTEMPTS':
      return `Too many codes were tried or sent. You can ask for a new code in ${formatWait(error.retryAfter)}.`;
    case 'SESSION_EXPIRED':
      return 'Your session has ended. Please sign in again.';
    case 'UNAUTHENTICATED':
      return 'You are signed out. Please sign in again.';
    case 'SERVICE_UNAVAILABLE':
      return error.retryAfter
        ? `FinHub is busy right now. Please try again in ${formatWait(error.retryAfter)}.`
        : 'FinHub is busy right now. Please try again in a minute.';
    case 'NETWORK':
      return 'We cannot reach FinHub. Check your internet connection and try again.';
    case 'PASSWORD_REJECTED':
      return passwordRejected(p.reasons ?? []);
    case 'FACTOR_REQUIRED':
      return 'You cannot reset your password here: the only way FinHub has to check it is you is the e-mail address the reset code went to. Please contact FinHub support.';
    case 'PASSWORD_RESET_IN_PROGRESS':
      return 'Finish resetting your password first.';
    case 'VALIDATION_ERROR':
      return 'Some of what you entered is not valid. Check it and try again.';
    case 'PASSKEY_NOT_USED':
      return error.message;
    case 'INTERNAL_ERROR':
      return p.requestId
        ? `Something went wrong on our side. Please try again. If it keeps happening, tell FinHub support this reference: ${p.requestId}.`
        : 'Something went wrong on our side. Please try again.';
    default:
      return 'Something went wrong. Please try again.';
  }
}

const REJECTIONS = {
  TOO_SHORT: 'it is too short',
  TOO_LONG: 'it is too long',
  COMMON: 'it is one of the most common passwords',
  CONTEXT: 'it contains your name, username or FinHub',
  BREACHED: 'it has appeared in a data breach elsewhere',
  REUSED: 'it is your current password',
};

// Why a new password was refused, every reason in words.
function passwordRejected(reasons) {
  const words = reasons.map((r) => REJECTIONS[r]).filter(Boolean);
  if (words.length === 0) return 'Choose another password: that one is not allowed.';
  return `Choose another password: ${words.join(', and ')}.`;
}
