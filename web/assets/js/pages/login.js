// The login page: username and password, the error in words beside the form.

import { call } from '../api.js';
import { currentDevice } from '../device.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { messageFor } from '../messages.js';
import { passkeyFailure, passkeysSupported, usePasskey } from '../passkey.js';
import { markPasswordReset, saveReset, saveTokens } from '../storage.js';

export function showLogin(app) {
  const page = mountPage(app.view, 'page-login');
  const form = part(page, 'form');
  const error = part(page, 'error');
  const notice = part(page, 'notice');
  const { username, password } = form.elements;
  const submit = form.querySelector('button[type="submit"]');

  const pending = app.takeNotice();
  if (pending) showMessage(notice, pending, { focus: false });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    if (!username.value.trim()) {
      showMessage(error, 'Enter your username.');
      return;
    }
    if (!password.value) {
      showMessage(error, 'Enter your password.');
      return;
    }
    submit.disabled = true;
    try {
      const tokens = await call('POST', '/auth/token', {
        body: { username: username.value, password: password.value, device: currentDevice() },
      });
      password.value = '';
      markPasswordReset(false);
      saveReset(null);
      saveTokens(tokens);
      app.navigate();
    } catch (failure) {
      password.value = '';
      hideMessage(notice);
      showMessage(error, messageFor(failure));
    } finally {
      submit.disabled = false;
    }
  });
  signInWithPasskey(page, app, error, notice);
  username.focus();
}

// No username, no password: the browser offers the customer's passkeys for FinHub, and the one
// chosen signs the whole sign-in.
function signInWithPasskey(page, app, error, notice) {
  if (!passkeysSupported()) return;
  part(page, 'passkey-login').hidden = false;
  const button = part(page, 'passkey-sign-in');
  button.addEventListener('click', async () => {
    hideMessage(error);
    hideMessage(notice);
    button.disabled = true;
    try {
      const options = await call('POST', '/auth/passkey/options', { body: {} });
      let credential;
      try {
        credential = await usePasskey(options.publicKey);
      } catch (refused) {
        throw passkeyFailure(refused);
      }
      const tokens = await call('POST', '/auth/passkey', {
        body: { challengeId: options.challengeId, credential, device: currentDevice() },
      });
      markPasswordReset(false);
      saveReset(null);
      saveTokens(tokens);
      app.navigate();
    } catch (failure) {
      showMessage(error, {
        INVALID_CREDENTIALS: 'That passkey is not one FinHub knows for an account, or it could not be checked. Sign in with your password.',
        NOT_FOUND: 'Signing in with a passkey is not available. Sign in with your password.',
      }[failure.code] ?? messageFor(failure));
    } finally {
      button.disabled = false;
    }
  });
}
