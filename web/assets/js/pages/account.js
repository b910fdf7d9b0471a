// The account page: who is signed in, their identity check and two-step settings, this login
// and the one before, and when the session ends.

import { call } from '../api.js';
import { mountPage, part, setField, showMessage } from '../dom.js';
import { formatDateTime, formatTime } from '../format.js';
import { messageFor } from '../messages.js';
import { readTokens } from '../storage.js';
import { showCredentials } from './credentials.js';
import { showSecurity } from './security.js';

const KYC = {
  VERIFIED: ['Verified', 'Your identity is confirmed. Every FinHub service is open to you.'],
  PENDING: ['Being checked', 'We are checking the documents you sent. Payments and investments open once we have finished; we will tell you.'],
  NOT_STARTED: ['Not started', 'Confirm your identity to open payments and investments.'],
  REJECTED: ['Not accepted', 'We could not confirm your identity from the documents sent. Please contact FinHub support.'],
};

const METHOD_NAMES = { SMS: 'text message', EMAIL: 'e-mail' };

function twoFactorText(twoFactor) {
  if (!twoFactor?.enabled) return 'Off: signing in needs your password only.';
  if (twoFactor.method === 'TOTP') return 'On: each sign-in also needs a code from your authenticator app.';
  const method = METHOD_NAMES[twoFactor.method] ?? 'message';
  return twoFactor.destination
    ? `On: each sign-in also needs a code sent by ${method} to ${twoFactor.destination}.`
    : `On: each sign-in also needs a code sent by ${method}.`;
}

function fill(page, customer) {
  setField(page, 'firstName', customer.firstName);
  setField(page, 'name', `${customer.firstName} ${customer.lastName}`);
  setField(page, 'username', customer.username);
  setField(page, 'email', customer.email);
  setField(page, 'phone', customer.phone ?? 'None on file');
  const [label, meaning] = KYC[customer.kycStatus] ?? ['Unknown', 'Please contact FinHub support.'];
  setField(page, 'kycLabel', label);
  setField(page, 'kycMeaning', meaning);
  setField(page, 'twoFactor', twoFactorText(customer.twoFactor));
  setField(page, 'lastLoginAt', customer.lastLoginAt ? formatDateTime(customer.lastLoginAt) : '—');
  setField(page, 'previousLoginAt',
    customer.previousLoginAt ? formatDateTime(customer.previousLoginAt) : 'This is your first sign-in.');
}

// Called again when the tokens change (a renewal here or in another tab).
export function showExpiry(page) {
  const tokens = readTokens();
  if (tokens) setField(page, 'expiresAt', formatTime(tokens.expiresAt));
}

export async function showAccount(app) {
  const page = mountPage(app.view, 'page-account');
  showExpiry(page);
  if (!app.state.customer) {
    try {
      const customer = await call('GET', '/customers/me', { token: readTokens()?.bffToken });
      if (!page.isConnected) return;
      app.state.customer = customer;
    } catch (failure) {
      if (!app.handleSessionError(failure)) showMessage(part(page, 'error'), messageFor(failure));
      return;
    }
  }
  fill(page, app.state.customer);
  part(page, 'error').hidden = true;
  // A factor added or removed changes the two-step line: read the customer again.
  showCredentials(page, app, async () => {
    try {
      const customer = await call('GET', '/customers/me', { token: readTokens()?.bffToken });
      app.state.customer = customer;
      if (page.isConnected) fill(page, customer);
    } catch (failure) {
      app.handleSessionError(failure);
    }
  });
  await showSecurity(page, app);
}
