// The two-factor page: where the code went, a 6-digit entry that takes a pasted code, resend
// with a countdown, tries left after a wrong code, and word when the code could not be sent; or,
// for a passkey, a button that asks the device for it.

import { call } from '../api.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { formatTime } from '../format.js';
import { messageFor } from '../messages.js';
import { passkeyFailure, usePasskey } from '../passkey.js';
import { forgetChallenge, readChallenge, readTokens, saveChallenge, saveTokens } from '../storage.js';

const METHOD_NAMES = { SMS: 'text message', EMAIL: 'e-mail' };

export function showVerify(app) {
  const page = mountPage(app.view, 'page-verify');
  const form = part(page, 'form');
  const error = part(page, 'error');
  const sent = part(page, 'sent');
  const resend = part(page, 'resend');
  const countdown = part(page, 'countdown');
  const code = form.elements.code;
  const submit = form.querySelector('button[type="submit"]');
  let challenge = readChallenge(readTokens()?.sessionId);
  let resendAt = 0;

  const tick = () => {
    const left = Math.ceil((resendAt - Date.now()) / 1000);
    if (left > 0) {
      resend.disabled = true;
      countdown.textContent = `You can ask for a new code in ${left} s.`;
    } else {
      resend.disabled = false;
      countdown.textContent = '';
    }
  };
  app.every(1_000, tick);

  // Until the code is known to be sent, asks where it stands; a code that could not be sent
  // (or expired first) can be asked for again at once.
  let watched = null;
  const watchDelivery = async () => {
    if (!challenge || !challenge.destination || watched === challenge.challengeId) return;
    const id = challenge.challengeId;
    try {
      const state = await call('GET', `/auth/2fa/challenges/${encodeURIComponent(id)}`, {
        token: readTokens()?.bffToken,
      });
      if (challenge?.challengeId !== id || state.delivery === 'PENDING') return;
      watched = id;
      if (state.delivery === 'FAILED' || state.delivery === 'EXPIRED') {
        resendAt = 0;
        tick();
        showMessage(error, state.delivery === 'FAILED'
          ? 'We could not send your code. Ask for a new one.'
          : 'Your code could not be sent in time. Ask for a new one.');
      }
    } catch (failure) {
      if (app.handleSessionError(failure)) return;
      if (failure.code === 'TWO_FACTOR_NOT_PENDING') app.navigate();
    }
  };
  app.every(2_000, watchDelivery);

  const showChallenge = () => {
    // An authenticator app's code is not sent: the page says where to find it instead. A
    // passkey takes no code at all.
    const fromApp = challenge.method === 'TOTP';
    const byPasskey = challenge.method === 'PASSKEY';
    part(page, 'app').hidden = !fromApp;
    part(page, 'passkey').hidden = !byPasskey;
    form.hidden = byPasskey;
    page.querySelector('.resend').hidden = byPasskey;
    sent.hidden = fromApp || byPasskey;
    if (!fromApp && !byPasskey) {
      part(page, 'method').textContent = METHOD_NAMES[challenge.method] ?? 'message';
      part(page, 'destination').textContent = challenge.destination;
      part(page, 'code-expiry').textContent = formatTime(challenge.expiresAt);
    }
    resendAt = challenge.resendAvailableAt ? Date.parse(challenge.resendAvailableAt) : 0;
    tick();
  };

  const fail = (failure) => {
    if (app.handleSessionError(failure)) return;
    if (failure.code === 'TWO_FACTOR_NOT_PENDING') {
      // Verified already (in another tab, say): carry on with the session as it is now.
      app.navigate();
      return;
    }
    if (failure.code === 'TOO_MANY_2FA_ATTEMPTS' && failure.retryAfter) {
      resendAt = Date.now() + failure.retryAfter * 1000;
      tick();
    }
    code.value = '';
    showMessage(error, messageFor(failure));
  };

  const send = async () => {
    resend.disabled = true;
    hideMessage(error);
    try {
      const tokens = readTokens();
      challenge = await call('POST', '/auth/2fa/initiate', { token: tokens?.bffToken, body: {} });
      saveChallenge(challenge, tokens?.sessionId);
      showChallenge();
      (challenge.method === 'PASSKEY' ? part(page, 'passkey-use') : code).focus();
    } catch (failure) {
      fail(failure);
      tick();
    }
  };

  const verify = async () => {
    hideMessage(error);
    if (!/^[0-9]{6}$/.test(code.value)) {
      showMessage(error, 'Enter the 6 digits of the code.');
      return;
    }
    if (!challenge) {
      showMessage(error, 'Ask for a code first.');
      return;
    }
    submit.disabled = true;
    try {
      const tokens = readTokens();
      const verified = await call('POST', '/auth/2fa/verify', {
        token: tokens?.bffToken,
        body: { challengeId: challenge.challengeId, code: code.value },
      });
      forgetChallenge();
      saveTokens(verified);
      app.navigate();
    } catch (failure) {
      fail(failure);
    } finally {
      submit.disabled = false;
    }
  };

  // Keeps digits only, so a pasted "123 456" or "Your code is 123456." works.
  code.addEventListener('paste', (event) => {
    const pasted = event.clipboardData?.getData('text') ?? '';
    const digits = pasted.replace(/[^0-9]/g, '').slice(-6);
    if (!digits) return;
    event.preventDefault();
    code.value = digits;
    if (digits.length === 6) verify();
  });
  code.addEventListener('input', () => {
    code.value = code.value.replace(/[^0-9]/g, '').slice(0, 6);
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    verify();
  });
  resend.addEventListener('click', send);
  useRecoveryCode(page, app, fail);

  // A passkey's challenge is answered by the device; one that is spent is asked for anew.
  const passkeyError = part(page, 'passkey-error');
  const usePasskeyButton = part(page, 'passkey-use');
  let spent = false;
  usePasskeyButton.addEventListener('click', async () => {
    hideMessage(passkeyError);
    usePasskeyButton.disabled = true;
    try {
      if (spent || challenge?.method !== 'PASSKEY') {
        const tokens = readTokens();
        challenge = await call('POST', '/auth/2fa/initiate', { token: tokens?.bffToken, body: { method: 'PASSKEY' } });
        saveChallenge(challenge, tokens?.sessionId);
        spent = false;
      }
      let credential;
      try {
        credential = await usePasskey(challenge.publicKey);
      } catch (refused) {
        throw passkeyFailure(refused);
      }
      const verified = await call('POST', '/auth/2fa/verify', {
        token: readTokens()?.bffToken,
        body: { challengeId: challenge.challengeId, credential },
      });
      forgetChallenge();
      saveTokens(verified);
      app.navigate();
    } catch (failure) {
      if (app.handleSessionError(failure)) return;
      if (failure.code === 'TWO_FACTOR_NOT_PENDING') {
        app.navigate();
        return;
      }
      spent = ['TOO_MANY_2FA_ATTEMPTS', '2FA_CODE_EXPIRED'].includes(failure.code);
      showMessage(passkeyError, failure.code === 'INVALID_2FA_CODE'
        ? 'That passkey could not be checked. Use the passkey you added to FinHub.'
        : messageFor(failure));
    } finally {
      usePasskeyButton.disabled = false;
    }
  });

  if (challenge) {
    showChallenge();
    (challenge.method === 'PASSKEY' ? usePasskeyButton : code).focus();
  } else {
    send();
  }
}

// A customer without their usual second step answers with one of their recovery codes.
function useRecoveryCode(page, app, fail) {
  const form = part(page, 'recovery-form');
  const error = part(page, 'recovery-error');
  const use = part(page, 'use-recovery');
  let challenge = null;
  use.addEventListener('click', async () => {
    hideMessage(error);
    try {
      challenge = await call('POST', '/auth/2fa/initiate', {
        token: readTokens()?.bffToken,
        body: { method: 'RECOVERY_CODE' },
      });
    } catch (failure) {
      if (failure.code === 'VALIDATION_ERROR') {
        showMessage(part(page, 'error'), 'You have no recovery codes left. Use your usual second step, or contact FinHub support.');
      } else {
        fail(failure);
      }
      return;
    }
    part(page, 'form').hidden = true;
    part(page, 'sent').hidden = true;
    part(page, 'app').hidden = true;
    part(page, 'passkey').hidden = true;
    page.querySelector('.resend').hidden = true;
    use.hidden = true;
    form.hidden = false;
    form.elements.recovery.focus();
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    const code = form.elements.recovery.value.trim();
    if (!code) {
      showMessage(error, 'Enter one of your recovery codes.');
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const verified = await call('POST', '/auth/2fa/verify', {
        token: readTokens()?.bffToken,
        body: { challengeId: challenge.challengeId, code },
      });
      forgetChallenge();
      saveTokens(verified);
      app.navigate();
    } catch (failure) {
      form.elements.recovery.value = '';
      if (failure.code === 'INVALID_2FA_CODE') {
        showMessage(error, 'That recovery code is not right, or was used already.');
      } else if (failure.code === 'TOO_MANY_2FA_ATTEMPTS' || failure.code === '2FA_CODE_EXPIRED') {
        // This challenge is spent: a new one is asked for with the next try.
        use.hidden = false;
        form.hidden = true;
        showMessage(part(page, 'error'), messageFor(failure), { focus: false });
        part(page, 'form').hidden = false;
        use.focus();
      } else {
        fail(failure);
      }
    } finally {
      submit.disabled = false;
    }
  });
}
