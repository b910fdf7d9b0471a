// The account page's "Sign-in and security" section: the customer's factors, changing the
// password, adding an app, a phone or a mailbox, and making recovery codes. Each may first ask the customer to confirm it is them (a step-up) when the server
// says the session has not proved a second factor recently; the action then goes ahead.

import { call } from '../api.js';
import { hideMessage, part, showMessage } from '../dom.js';
import { messageFor } from '../messages.js';
import { createPasskey, passkeyFailure, passkeysSupported, usePasskey } from '../passkey.js';
import { readTokens } from '../storage.js';
import { strengthHint } from '../strength.js';

// The way to confirm it is them the page picks first, of those the server lists: a passkey,
// which nothing can phish, where the browser has them.
const PREFERRED = [...(passkeysSupported() ? ['PASSKEY'] : []), 'TOTP', 'SMS', 'EMAIL', 'RECOVERY_CODE', 'PASSWORD'];
const SENT_BY = { SMS: 'text message', EMAIL: 'e-mail' };

function token() {
  return readTokens()?.bffToken;
}

// Told when a change alters what the account page shows (its two-step line).
let changed = () => {};

// Step-up answers after which the challenge is no use: the box closes, and the action with it.
const CHALLENGE_ENDED = ['TOO_MANY_2FA_ATTEMPTS', '2FA_CODE_EXPIRED', 'NOT_FOUND', 'ACCOUNT_LOCKED'];

function failure(code) {
  return Object.assign(new Error(code), { code });
}

// Actions run one after another: a second one waits for the first (and its step-up), after
// which the session is recent and it needs none.
let queue = Promise.resolve();

// Runs `action`; when the server asks for a recent second factor, asks for one and runs
// `action` again once it is proved. Resolves to the action's answer, or rejects with its error
// (or the step-up's, or a CANCELLED one when the customer gives up).
function withStepUp(section, action) {
  const run = queue.then(() => stepUpOnce(section, action));
  queue = run.catch(() => {});
  return run;
}

function stepUpOnce(section, action) {
  const box = part(section, 'step-up');
  const form = part(section, 'step-up-form');
  const error = part(section, 'step-up-error');
  const confirm = form.querySelector('button[type="submit"]');
  const { code } = form.elements;
  // Where the focus goes back to when the box closes: the control that started the action.
  const started = document.activeElement;
  return new Promise((resolve, reject) => {
    const finish = (settle) => (value) => {
      const wasOpen = !box.hidden;
      box.hidden = true;
      code.value = '';
      hideMessage(error);
      form.onsubmit = null;
      part(section, 'step-up-cancel').onclick = null;
      if (wasOpen && started instanceof HTMLElement && started.isConnected) started.focus();
      settle(value);
    };
    const done = finish(resolve);
    const failed = finish(reject);
    const attempt = async () => {
      try {
        done(await action());
      } catch (refused) {
        if (refused.code === 'RECENT_AUTHENTICATION_REQUIRED') ask(refused.problem.methods ?? []);
        else failed(refused);
      }
    };
    const ask = async (methods) => {
      const method = PREFERRED.find((m) => methods.includes(m));
      if (!method) {
        failed(failure('NO_METHOD'));
        return;
      }
      let challenge;
      try {
        challenge = await call('POST', '/auth/step-up', { token: token(), body: { method } });
      } catch (refused) {
        failed(refused);
        return;
      }
      if (method === 'PASSKEY') {
        // The device asks for itself: no box, and the action goes ahead once it answers.
        try {
          let credential;
          try {
            credential = await usePasskey(challenge.publicKey);
          } catch (refused) {
            throw passkeyFailure(refused);
          }
          await call('POST', '/auth/step-up/verify', {
            token: token(),
            body: { challengeId: challenge.challengeId, credential },
          });
        } catch (refused) {
          failed(refused);
          return;
        }
        attempt();
        return;
      }
      part(section, 'step-up-text').textContent = {
        TOTP: 'Enter the 6-digit code your authenticator app shows for FinHub.',
        RECOVERY_CODE: 'Enter one of your recovery codes.',
        PASSWORD: 'Enter your password.',
      }[method] ?? `We sent a 6-digit code by ${SENT_BY[method]} to ${challenge.destination}.`;
      const byPassword = method === 'PASSWORD';
      part(section, 'step-up-label').textContent = byPassword ? 'Password' : 'Code';
      code.type = byPassword ? 'password' : 'text';
      code.autocomplete = byPassword ? 'current-password' : 'one-time-code';
      box.hidden = false;
      code.focus();
      form.onsubmit = async (event) => {
        event.preventDefault();
        hideMessage(error);
        const answer = byPassword ? { password: code.value } : { code: code.value.trim() };
        confirm.disabled = true;
        try {
          await call('POST', '/auth/step-up/verify', {
            token: token(),
            body: { challengeId: challenge.challengeId, ...answer },
          });
        } catch (refused) {
          code.value = '';
          if (CHALLENGE_ENDED.includes(refused.code) || refused.code === 'SESSION_EXPIRED'
            || refused.code === 'UNAUTHENTICATED') {
            failed(refused);
          } else {
            showMessage(error, messageFor(refused));
          }
          return;
        } finally {
          confirm.disabled = false;
        }
        box.hidden = true;
        attempt();
      };
      part(section, 'step-up-cancel').onclick = () => failed(failure('CANCELLED'));
    };
    attempt();
  });
}

function passwordChange(section, app) {
  const form = part(section, 'password-form');
  const error = part(section, 'password-error');
  const notice = part(section, 'credentials-notice');
  const { current, password, again } = form.elements;
  const submit = form.querySelector('button[type="submit"]');
  const customer = app.state.customer;
  strengthHint(password, part(form, 'strength'), () => (customer
    ? [customer.username, customer.email, customer.firstName, customer.lastName, 'finhub']
    : ['finhub']));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    hideMessage(notice);
    if (!current.value || !password.value) {
      showMessage(error, 'Enter your current password and a new one.');
      return;
    }
    if (password.value !== again.value) {
      again.value = '';
      showMessage(error, 'The two new passwords are not the same. Enter the new one twice.');
      return;
    }
    submit.disabled = true;
    const body = { currentPassword: current.value, newPassword: password.value };
    try {
      await withStepUp(section, () => call('POST', '/customers/me/password', { token: token(), body }));
      form.reset();
      showMessage(notice, 'Your password is changed. You are signed out everywhere else.');
    } catch (failure) {
      if (failure.code === 'CANCELLED' || app.handleSessionError(failure)) return;
      if (failure.code === 'INVALID_CREDENTIALS') current.value = '';
      showMessage(error, failure.code === 'INVALID_CREDENTIALS'
        ? 'Your current password is not right.'
        : messageFor(failure));
    } finally {
      submit.disabled = false;
    }
  });
}

function recoveryCodes(section, app) {
  const make = part(section, 'recovery-make');
  const error = part(section, 'recovery-error');
  const shown = part(section, 'recovery');
  const list = part(section, 'recovery-list');
  let codes = [];
  make.addEventListener('click', async () => {
    hideMessage(error);
    make.disabled = true;
    try {
      const made = await withStepUp(section, () => call('POST', '/customers/me/recovery-codes', { token: token(), body: {} }));
      codes = made.codes;
      list.replaceChildren(...codes.map((c) => {
        const li = document.createElement('li');
        li.textContent = c;
        return li;
      }));
      shown.hidden = false;
      shown.focus();
      listFactors(section, app);
    } catch (failure) {
      if (failure.code === 'CANCELLED' || app.handleSessionError(failure)) return;
      showMessage(error, failure.code === 'FACTOR_REQUIRED'
        ? 'Recovery codes are for a second step you can lose: turn two-step verification on first.'
        : messageFor(failure));
    } finally {
      make.disabled = false;
    }
  });
  // Once saved, the codes leave the page.
  part(section, 'recovery-done').addEventListener('click', () => {
    codes = [];
    list.replaceChildren();
    shown.hidden = true;
    make.focus();
  });
  part(section, 'recovery-download').addEventListener('click', () => {
    const text = `FinHub recovery codes (each works once)\n\n${codes.join('\n')}\n`;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    link.download = 'finhub-recovery-codes.txt';
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1_000);
  });
}

// Draws `text` as a QR code on `canvas`, dark on light whatever the colour scheme (scanners
// need the contrast). The encoder is loaded only here, so a sign-in never downloads it.
export async function drawQr(canvas, text) {
  const { qrcode } = await import('../../vendor/qrcode-generator.js');
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const cell = 4;
  const margin = 4 * cell;
  const count = qr.getModuleCount();
  canvas.width = count * cell + margin * 2;
  canvas.height = canvas.width;
  const draw = canvas.getContext('2d');
  draw.fillStyle = '#ffffff';
  draw.fillRect(0, 0, canvas.width, canvas.height);
  draw.fillStyle = '#000000';
  for (let row = 0; row < count; row += 1) {
    for (let col = 0; col < count; col += 1) {
      if (qr.isDark(row, col)) draw.fillRect(margin + col * cell, margin + row * cell, cell, cell);
    }
  }
}

function authenticatorApp(section, app) {
  const add = part(section, 'app-add');
  const error = part(section, 'app-error');
  const setup = part(section, 'app-setup');
  const form = part(section, 'app-form');
  const notice = part(section, 'credentials-notice');
  const { code } = form.elements;
  let factor = null;
  // The key is shown while it is being added, and gone from the page after.
  const forgetKey = () => {
    factor = null;
    part(section, 'app-secret').textContent = '';
    part(section, 'app-qr').width = 0;
    setup.hidden = true;
    add.hidden = false;
    code.value = '';
  };
  add.addEventListener('click', async () => {
    hideMessage(error);
    hideMessage(notice);
    add.disabled = true;
    try {
      factor = await withStepUp(section, () => call('POST', '/customers/me/factors', {
        token: token(),
        body: { method: 'TOTP', name: 'Authenticator app' },
      }));
      part(section, 'app-secret').textContent = factor.secret.replace(/(.{4})(?=.)/g, '$1 ');
      await drawQr(part(section, 'app-qr'), factor.otpauthUri);
      setup.hidden = false;
      add.hidden = true;
      code.focus();
    } catch (failure) {
      if (failure.code === 'CANCELLED' || app.handleSessionError(failure)) return;
      showMessage(error, messageFor(failure));
    } finally {
      add.disabled = false;
    }
  });
  code.addEventListener('input', () => {
    code.value = code.value.replace(/[^0-9]/g, '').slice(0, 6);
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    if (!/^[0-9]{6}$/.test(code.value)) {
      showMessage(error, 'Enter the 6 digits the app shows.');
      return;
    }
    try {
      await call('POST', `/customers/me/factors/${encodeURIComponent(factor.id)}/confirm`, {
        token: token(),
        body: { code: code.value },
      });
      forgetKey();
      changed();
      showMessage(notice, 'Your authenticator app is added.');
      listFactors(section, app);
    } catch (failure) {
      if (app.handleSessionError(failure)) return;
      code.value = '';
      if (failure.code === 'NOT_FOUND' || failure.code === 'TOO_MANY_2FA_ATTEMPTS') forgetKey();
      showMessage(error, failure.code === 'NOT_FOUND'
        ? 'That took too long, or too many codes were wrong. Add the app again.'
        : messageFor(failure));
    }
  });
}

// A passkey made by this device (or a phone or security key it offers): usable once the
// server has checked what the device made.
function passkey(section, app) {
  if (!passkeysSupported()) return;
  part(section, 'passkeys').hidden = false;
  const add = part(section, 'passkey-add');
  const error = part(section, 'passkey-error');
  const notice = part(section, 'credentials-notice');
  add.addEventListener('click', async () => {
    hideMessage(error);
    hideMessage(notice);
    add.disabled = true;
    try {
      const factor = await withStepUp(section, () => call('POST', '/customers/me/factors', {
        token: token(),
        body: { method: 'PASSKEY', name: 'Passkey' },
      }));
      let credential;
      try {
        credential = await createPasskey(factor.publicKey);
      } catch (refused) {
        throw passkeyFailure(refused);
      }
      await call('POST', `/customers/me/factors/${encodeURIComponent(factor.id)}/confirm`, {
        token: token(),
        body: { credential },
      });
      changed();
      showMessage(notice, 'Your passkey is added: you can sign in with it now.');
      listFactors(section, app);
    } catch (failure) {
      if (failure.code === 'CANCELLED' || app.handleSessionError(failure)) return;
      showMessage(error, failure.code === 'INVALID_2FA_CODE'
        ? 'FinHub could not check that passkey. Try again, or use another device.'
        : messageFor(failure));
    } finally {
      add.disabled = false;
    }
  });
}

// A new phone or mailbox for codes: usable once the code sent to it comes back.
function phoneOrMailbox(section, app) {
  const form = part(section, 'contact-form');
  const confirm = part(section, 'contact-confirm');
  const error = part(section, 'contact-error');
  const notice = part(section, 'credentials-notice');
  const { code } = confirm.elements;
  let factor = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    hideMessage(notice);
    const address = form.elements.address.value.trim();
    if (!address) {
      showMessage(error, 'Enter a mobile number or an e-mail address.');
      return;
    }
    const body = address.includes('@')
      ? { method: 'EMAIL', email: address, name: 'E-mail' }
      : { method: 'SMS', phone: address.replace(/[\s()-]/g, ''), name: 'Phone' };
    const send = form.querySelector('button[type="submit"]');
    send.disabled = true;
    try {
      factor = await withStepUp(section, () => call('POST', '/customers/me/factors', { token: token(), body }));
    } catch (failure) {
      if (failure.code === 'CANCELLED' || app.handleSessionError(failure)) return;
      showMessage(error, failure.code === 'VALIDATION_ERROR'
        ? 'That is not a mobile number with its country code, nor an e-mail address.'
        : messageFor(failure));
      return;
    } finally {
      send.disabled = false;
    }
    part(section, 'contact-sent').textContent = `We sent a 6-digit code to ${factor.destination}.`;
    form.hidden = true;
    confirm.hidden = false;
    code.focus();
  });
  code.addEventListener('input', () => {
    code.value = code.value.replace(/[^0-9]/g, '').slice(0, 6);
  });
  confirm.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideMessage(error);
    try {
      await call('POST', `/customers/me/factors/${encodeURIComponent(factor.id)}/confirm`, {
        token: token(),
        body: { code: code.value },
      });
      changed();
      confirm.hidden = true;
      form.hidden = false;
      form.reset();
      code.value = '';
      showMessage(notice, `${factor.destination} is added: codes can go there now.`);
      listFactors(section, app);
    } catch (failure) {
      if (app.handleSessionError(failure)) return;
      code.value = '';
      if (failure.code === 'NOT_FOUND' || failure.code === 'TOO_MANY_2FA_ATTEMPTS') {
        confirm.hidden = true;
        form.hidden = false;
      }
      showMessage(error, failure.code === 'NOT_FOUND'
        ? 'That took too long, or too many codes were wrong. Add it again.'
        : messageFor(failure));
    }
  });
}

const METHOD_WORDS = { TOTP: 'Authenticator app', SMS: 'Text messages', EMAIL: 'E-mail', PASSKEY: 'Passkey' };

function factorItem(factor, actions) {
  const li = document.createElement('li');
  const title = document.createElement('p');
  title.className = 'title';
  title.textContent = factor.name ?? METHOD_WORDS[factor.method] ?? factor.method;
  const detail = document.createElement('p');
  detail.className = 'hint';
  detail.textContent = [
    METHOD_WORDS[factor.method] ?? factor.method,
    factor.destination,
    factor.default ? 'asked for first' : null,
  ].filter(Boolean).join(' · ');
  li.append(title, detail);
  for (const [label, onClick] of actions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.textContent = label;
    // Every item has the same buttons: the accessible name says which factor each acts on.
    b.setAttribute('aria-label', `${label}: ${title.textContent}`);
    b.addEventListener('click', onClick);
    li.append(b);
  }
  return li;
}

// A small form in the factor's item for its new name; `save` is given the trimmed name and
// settles when the rename is done or refused (the form stays for another try).
function renameForm(item, current, save) {
  if (item.querySelector('form')) return;
  const form = document.createElement('form');
  form.noValidate = true;
  const id = `rename-${Math.random().toString(36).slice(2)}`;
  const label = document.createElement('label');
  label.htmlFor = id;
  label.textContent = `New name for ${current}`;
  const input = document.createElement('input');
  input.id = id;
  input.name = 'name';
  input.maxLength = 64;
  input.required = true;
  input.value = current;
  const saveButton = document.createElement('button');
  saveButton.type = 'submit';
  saveButton.textContent = 'Save the name';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'secondary';
  cancel.textContent = 'Keep the name';
  cancel.addEventListener('click', () => form.remove());
  form.append(label, input, saveButton, cancel);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) {
      input.focus();
      return;
    }
    saveButton.disabled = true;
    try {
      await save(name, event);
    } finally {
      saveButton.disabled = false;
    }
  });
  item.append(form);
  input.select();
  input.focus();
}

// The customer's factors, each with "Ask for this first", "Rename" and "Remove" (after a
// step-up when the server asks for one), and how many recovery codes are left.
async function listFactors(section, app) {
  const list = part(section, 'factors');
  const error = part(section, 'factors-error');
  const notice = part(section, 'credentials-notice');
  let held;
  try {
    held = await call('GET', '/customers/me/factors', { token: token() });
  } catch (failure) {
    if (!app.handleSessionError(failure)) showMessage(error, messageFor(failure));
    return;
  }
  const change = (request, done) => async (event) => {
    hideMessage(error);
    hideMessage(notice);
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await withStepUp(section, request);
    } catch (failure) {
      button.disabled = false;
      if (failure.code === 'CANCELLED' || app.handleSessionError(failure)) return;
      showMessage(error, failure.code === 'FACTOR_REQUIRED'
        ? 'FinHub asks everyone to keep a second step: add another before removing this one.'
        : messageFor(failure));
      return;
    }
    changed();
    showMessage(notice, done);
    listFactors(section, app);
  };
  const path = (factor) => `/customers/me/factors/${encodeURIComponent(factor.id)}`;
  const rename = (factor) => (event) => {
    const current = factor.name ?? METHOD_WORDS[factor.method] ?? factor.method;
    renameForm(event.currentTarget.closest('li'), current, (name, submitted) => change(
      () => call('PATCH', path(factor), { token: token(), body: { name } }),
      `Renamed to ${name}.`,
    )({ currentTarget: submitted.submitter ?? submitted.target }));
  };
  list.replaceChildren(...held.factors.map((factor) => factorItem(factor, [
    ...(factor.default ? [] : [['Ask for this first', change(
      () => call('PATCH', path(factor), { token: token(), body: { default: true } }),
      'Signing in now asks for that one first.',
    )]]),
    ['Rename', rename(factor)],
    ['Remove', change(
      () => call('DELETE', path(factor), { token: token() }),
      'Removed. FinHub told you at every address you had, in case it was not you.',
    )],
  ])));
  if (held.factors.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'None: signing in needs your password only.';
    list.append(li);
  }
  part(section, 'recovery-left').textContent = held.factors.length === 0
    ? ''
    : `Recovery codes left: ${held.recoveryCodesRemaining}.`;
}

// `onChanged` is told when a change alters what the rest of the account page shows.
export function showCredentials(page, app, onChanged) {
  changed = onChanged;
  const section = part(page, 'credentials');
  listFactors(section, app);
  passwordChange(section, app);
  authenticatorApp(section, app);
  passkey(section, app);
  phoneOrMailbox(section, app);
  recoveryCodes(section, app);
}
