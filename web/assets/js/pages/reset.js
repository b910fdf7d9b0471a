// The forgotten password: the username, then the 6-digit code e-mailed for it. The answer is
// the same whether or not the username exists, so the page says "if".

import { call } from '../api.js';
import { currentDevice } from '../device.js';
import { hideMessage, mountPage, part, showMessage } from '../dom.js';
import { formatTime } from '../format.js';
import { messageFor } from '../messages.js';
import { markPasswordReset, readReset, saveReset, saveTokens } from '../storage.js';

export function showReset(app) {
  const page = mountPage(app.view, 'page-reset');
  const ask = part(page, 'ask');
  const answer = part(page, 'answer');
  const askError = part(page, 'ask-error');
  const answerError = part(page, 'answer-error');
  const { username } = ask.elements;
  const { code } = answer.elements;

  const showAnswer = (reset) => {
    part(page, 'sent-to').textContent = `If ${reset.username} has a FinHub account, we sent a 6-digit code to its e-mail address. It is valid until ${formatTime(reset.expiresAt)}.`;
    ask.hidden = true;
    answer.hidden = false;
    code.focus();
  };
  const showAsk = () => {
    saveReset(null);
    answer.hidden = true;
    ask.hidden = false;
    hideMessage(answerError);
    username.focus();
  };

  ask.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(askError);
    if (!username.value.trim()) {
      showMessage(askError, 'Enter your username.');
      return;
    }
    const submit = ask.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const reset = await call('POST', '/auth/password-reset', { body: { username: username.value } });
      const asked = { ...reset, username: username.value.trim() };
      saveReset(asked);
      showAnswer(asked);
    } catch (failure) {
      showMessage(askError, messageFor(failure));
    } finally {
      submit.disabled = false;
    }
  });

  code.addEventListener('input', () => {
    code.value = code.value.replace(/[^0-9]/g, '').slice(0, 6);
  });
  answer.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(answerError);
    const reset = readReset();
    if (!reset) {
      showAsk();
      showMessage(askError, 'That code has expired. Ask for a new one.');
      return;
    }
    if (!/^[0-9]{6}$/.test(code.value)) {
      showMessage(answerError, 'Enter the 6 digits of the code.');
      return;
    }
    const submit = answer.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const tokens = await call('POST', '/auth/password-reset/verify', {
        body: { resetId: reset.resetId, code: code.value, device: currentDevice() },
      });
      saveReset(null);
      markPasswordReset(true);
      saveTokens(tokens);
      app.navigate();
    } catch (failure) {
      code.value = '';
      const spent = failure.code === 'TOO_MANY_2FA_ATTEMPTS' || failure.code === '2FA_CODE_EXPIRED'
        || failure.problem?.attemptsRemaining === 0;
      if (spent) {
        // This reset's code is of no more use: back to asking for a new one.
        showAsk();
        showMessage(askError, messageFor(failure));
        return;
      }
      showMessage(answerError, messageFor(failure));
    } finally {
      submit.disabled = false;
    }
  });
  part(page, 'again').addEventListener('click', showAsk);

  const pending = readReset();
  if (pending) showAnswer(pending);
  else username.focus();
}
