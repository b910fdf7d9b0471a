// The login page: username and password, the error in words beside the form.

import { call } from '../api.js';
import { currentDevice } from '../device.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { messageFor } from '../messages.js';
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
  username.focus();
}
