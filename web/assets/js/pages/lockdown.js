// "This wasn't me": the page a security notice's lockdown link opens. The link's token arrives
// in the URL's fragment (no server log sees it) and main.js takes it out of the address bar at
// once; nothing happens until the customer confirms, since a mail scanner may open links too.

import { call } from '../api.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { messageFor } from '../messages.js';

const USED_OR_EXPIRED = 'This link has expired or was already used. If you still think someone else is in your account, reset your password now, or contact FinHub.';

export function showLockdown(app) {
  const page = mountPage(app.view, 'page-lockdown');
  const error = part(page, 'error');
  const confirm = part(page, 'confirm');

  part(page, 'cancel').addEventListener('click', () => {
    app.lockdown = null;
    app.navigate();
  });

  confirm.addEventListener('click', async () => {
    hideMessage(error);
    confirm.disabled = true;
    try {
      await call('POST', '/auth/lockdown', { body: { token: app.lockdown } });
    } catch (failure) {
      const spent = failure.code === 'NOT_FOUND';
      showMessage(error, spent ? USED_OR_EXPIRED : messageFor(failure));
      // A spent link stays spent; anything else may be tried again.
      confirm.disabled = spent;
      return;
    }
    app.lockdown = null;
    // Every session ended, this browser's too.
    app.signedOutHere();
    part(page, 'ask').hidden = true;
    part(page, 'done').hidden = false;
    part(page, 'reset').focus();
  });
  confirm.focus();
}
