// The account page's "Security" section: where the customer is signed in (with "end this
// session"), their devices (with "forget this device"), and recent sign-in activity with what
// made a sign-in unusual. Everything is inserted as text.

import { call } from '../api.js';
import { hideMessage, part, showMessage } from '../dom.js';
import { formatDateTime } from '../format.js';
import { messageFor } from '../messages.js';
import { readTokens } from '../storage.js';

const KINDS = {
  'login.succeeded': 'Signed in',
  'login.failed': 'Failed sign-in',
  '2fa.initiated': 'Code sent',
  '2fa.verified': 'Code accepted',
  '2fa.failed': 'Wrong code entered',
  'session.refreshed': 'Session renewed',
  'session.refresh_reused': 'Session ended: a renewal was replayed',
  'session.logout': 'Signed out',
  'session.revoked': 'Session ended',
  'device.forgotten': 'Device forgotten',
  'account.locked': 'Account locked',
  'account.unlocked': 'Account unlocked',
  'stepup.verified': 'Identity confirmed',
  'stepup.failed': 'Wrong code while confirming identity',
  'password.changed': 'Password changed',
  'password.change_failed': 'Password change refused',
  'password_reset.verified': 'Password reset code accepted',
  'password_reset.failed': 'Wrong password reset code',
  'password.reset': 'Password reset',
  'factor.added': 'Second step added',
  'factor.removed': 'Second step removed',
  'recovery_codes.created': 'New recovery codes made',
};

const FLAGS = {
  NEW_DEVICE: 'new device',
  NEW_COUNTRY: 'new country',
  NEW_NETWORK: 'new network',
  IMPOSSIBLE_TRAVEL: 'impossible travel',
};

function line(text, className) {
  const p = document.createElement('p');
  p.textContent = text;
  p.className = className ?? 'hint';
  return p;
}

function where(ip, country) {
  if (!ip) return 'address unknown';
  return country ? `${ip} (${country})` : ip;
}

// Device names are chosen by whoever signs in, not by FinHub: they are shown as the device's
// own words, never as a statement of ours.
const NAMED_BY_DEVICE = 'Name given by the device at sign-in';

function item(title, details, action) {
  const li = document.createElement('li');
  li.append(line(title, 'title'), ...details.map((d) => line(d)));
  if (action) {
    // Every item has the same button: its accessible name says which item it acts on.
    action.setAttribute('aria-label', `${action.textContent}: ${title}`);
    li.append(action);
  }
  return li;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'secondary';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

function empty(text) {
  const li = document.createElement('li');
  li.textContent = text;
  return li;
}

export async function showSecurity(page, app) {
  const section = part(page, 'security');
  const error = part(section, 'security-error');
  const notice = part(section, 'security-notice');
  const api = (method, path) => call(method, path, { token: readTokens()?.bffToken });

  const act = async (path, done) => {
    hideMessage(error);
    try {
      await api('DELETE', path);
      // The lists are current by the time the notice says it is done.
      await load();
      showMessage(notice, done, { focus: false });
    } catch (failure) {
      if (!app.handleSessionError(failure)) showMessage(error, messageFor(failure));
    }
  };

  const load = async () => {
    let sessions;
    let devices;
    let events;
    try {
      [{ sessions }, { devices }, { events }] = await Promise.all([
        api('GET', '/sessions'),
        api('GET', '/customers/me/devices'),
        api('GET', '/customers/me/security-events?limit=10'),
      ]);
    } catch (failure) {
      if (!app.handleSessionError(failure)) showMessage(error, messageFor(failure));
      return;
    }
    if (!section.isConnected) return;
    part(section, 'sessions').replaceChildren(...sessions.map((s) => item(
      `${s.device?.name ?? s.userAgent ?? 'Unknown browser'}${s.current ? ' (this browser)' : ''}`,
      [`Signed in ${formatDateTime(s.createdAt)} from ${where(s.ip, s.country)}`,
        `Last active ${formatDateTime(s.lastSeenAt)}`,
        ...(s.device?.name ? [NAMED_BY_DEVICE] : [])],
      s.current ? null : button('End this session', () => act(`/sessions/${encodeURIComponent(s.id)}`, 'That session has ended.')),
    )));
    part(section, 'devices').replaceChildren(...(devices.length ? devices.map((d) => item(
      d.name ?? 'Unnamed device',
      [`Last used ${formatDateTime(d.lastSeenAt)} from ${where(d.lastIp, d.lastCountry)}`,
        `First seen ${formatDateTime(d.firstSeenAt)}; ${d.activeSessions === 1 ? '1 active session' : `${d.activeSessions} active sessions`}`,
        ...(d.name ? [NAMED_BY_DEVICE] : [])],
      button('Forget this device', () => act(`/customers/me/devices/${encodeURIComponent(d.id)}`, 'The device is forgotten and its sessions have ended.')),
    )) : [empty('No devices yet.')]));
    part(section, 'events').replaceChildren(...events.map((e) => {
      const li = item(
        `${KINDS[e.kind] ?? 'Account activity'}${e.outcome === 'failure' && !e.kind.endsWith('failed') ? ' (refused)' : ''}`,
        [`${formatDateTime(e.at)} · ${where(e.ip, e.country)}${e.device?.name ? ` · a device that calls itself “${e.device.name}”` : ''}`],
      );
      if (e.flags.length) {
        li.append(line(`Unusual: ${e.flags.map((f) => FLAGS[f] ?? 'unusual').join(', ')}`, 'flag'));
      }
      return li;
    }));
  };

  await load();
}
