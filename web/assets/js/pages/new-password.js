// The last step of a password reset: the new password, twice. Setting it ends every session,
// this one too, so the customer signs in again with it.

import { call } from '../api.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { messageFor } from '../messages.js';
import { readTokens } from '../storage.js';
import { strengthHint } from '../strength.js';

export function showNewPassword(app) {
  const page = mountPage(app.view, 'page-new-password');
  const form = part(page, 'form');
  const error = part(page, 'error');
  const { password, again } = form.elements;
  const submit = form.querySelector('button[type="submit"]');
  strengthHint(password, part(page, 'strength'));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    if (!password.value) {
      showMessage(error, 'Enter a new password.');
      return;
    }
    if (password.value !== again.value) {
      again.value = '';
      showMessage(error, 'The two passwords are not the same. Enter the new one twice.');
      return;
    }
    submit.disabled = true;
    try {
      await call('POST', '/auth/password-reset/complete', {
        token: readTokens()?.bffToken,
        body: { newPassword: password.value },
      });
      password.value = '';
      again.value = '';
      app.endLocally('Your password is reset, and you are signed out everywhere. Sign in with your new password.');
    } catch (failure) {
      if (app.handleSessionError(failure)) return;
      again.value = '';
      showMessage(error, messageFor(failure));
    } finally {
      submit.disabled = false;
    }
  });
  password.focus();
}
