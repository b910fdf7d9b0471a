// Enrolment, when FinHub requires a second factor of everyone and the customer has none: a
// passkey (where the browser makes them), an authenticator app (its key as a QR code drawn
// here) or a phone for text messages, confirmed by what the device made or by its first code;
// the answer carries the session's new tokens, and the account opens.

import { call } from '../api.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { messageFor } from '../messages.js';
import { createPasskey, passkeyFailure, passkeysSupported } from '../passkey.js';
import { readTokens, saveTokens } from '../storage.js';
import { drawQr } from './credentials.js';

export function showEnrol(app) {
  const page = mountPage(app.view, 'page-enrol');
  const error = part(page, 'error');
  const choose = part(page, 'choose');
  const confirm = part(page, 'confirm-form');
  const { code } = confirm.elements;
  let factor = null;

  const added = (body) => {
    factor = body;
    choose.hidden = true;
    confirm.hidden = false;
    code.focus();
  };
  // Back to the choice, the key gone from the page: the factor expired or took too many codes.
  const startAgain = () => {
    factor = null;
    part(page, 'secret').textContent = '';
    part(page, 'qr').width = 0;
    part(page, 'app-setup').hidden = true;
    part(page, 'code-sent').hidden = true;
    confirm.hidden = true;
    choose.hidden = false;
  };
  const failed = (failure) => {
    if (!app.handleSessionError(failure)) showMessage(error, messageFor(failure));
  };
  // Runs `work` with the choices disabled, so that a double click adds one factor.
  const choosing = async (work) => {
    hideMessage(error);
    const controls = choose.querySelectorAll('button, input');
    for (const control of controls) control.disabled = true;
    try {
      return await work();
    } finally {
      for (const control of controls) control.disabled = false;
    }
  };
  const addFactor = (body) => call('POST', '/customers/me/factors', { token: readTokens()?.bffToken, body });
  const confirmFactor = (factorId, body) => call(
    'POST',
    `/customers/me/factors/${encodeURIComponent(factorId)}/confirm`,
    { token: readTokens()?.bffToken, body },
  );
  // Adds a factor to confirm by a code; null when it could not be added (said on the page).
  const add = (body) => choosing(async () => {
    try {
      return await addFactor(body);
    } catch (failure) {
      failed(failure);
      return null;
    }
  });

  // A passkey is confirmed by what the device made: no code, and the account opens at once.
  const usePasskey = part(page, 'use-passkey');
  usePasskey.hidden = !passkeysSupported();
  usePasskey.addEventListener('click', () => choosing(async () => {
    try {
      const factor = await addFactor({ method: 'PASSKEY', name: 'Passkey' });
      let credential;
      try {
        credential = await createPasskey(factor.publicKey);
      } catch (refused) {
        throw passkeyFailure(refused);
      }
      const confirmed = await confirmFactor(factor.id, { credential });
      saveTokens(confirmed.token);
      app.navigate();
    } catch (failure) {
      if (failure.code === 'INVALID_2FA_CODE') {
        showMessage(error, 'FinHub could not check that passkey. Try again, or choose another way.');
      } else {
        failed(failure);
      }
    }
  }));

  part(page, 'use-app').addEventListener('click', async () => {
    const body = await add({ method: 'TOTP', name: 'Authenticator app' });
    if (!body) return;
    part(page, 'secret').textContent = body.secret.replace(/(.{4})(?=.)/g, '$1 ');
    try {
      await drawQr(part(page, 'qr'), body.otpauthUri);
    } catch {
      // The key, as text, still works.
    }
    part(page, 'app-setup').hidden = false;
    added(body);
  });
  part(page, 'phone-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const phone = event.target.elements.phone.value.replace(/[\s()-]/g, '');
    if (!phone) {
      showMessage(error, 'Enter your mobile number.');
      return;
    }
    const body = await add({ method: 'SMS', phone, name: 'Phone' });
    if (!body) return;
    const sent = part(page, 'code-sent');
    sent.textContent = `We sent a 6-digit code by text message to ${body.destination}.`;
    sent.hidden = false;
    added(body);
  });
  code.addEventListener('input', () => {
    code.value = code.value.replace(/[^0-9]/g, '').slice(0, 6);
  });
  const submit = confirm.querySelector('button[type="submit"]');
  confirm.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    if (!/^[0-9]{6}$/.test(code.value)) {
      showMessage(error, 'Enter the 6 digits of the code.');
      return;
    }
    submit.disabled = true;
    try {
      const confirmed = await confirmFactor(factor.id, { code: code.value });
      saveTokens(confirmed.token);
      app.navigate();
    } catch (failure) {
      if (app.handleSessionError(failure)) return;
      code.value = '';
      if (failure.code === 'NOT_FOUND' || failure.code === 'TOO_MANY_2FA_ATTEMPTS') {
        startAgain();
        showMessage(error, 'That took too long, or too many codes were wrong. Choose again.');
        return;
      }
      showMessage(error, messageFor(failure));
    } finally {
      submit.disabled = false;
    }
  });
  (usePasskey.hidden ? part(page, 'use-app') : usePasskey).focus();
}
