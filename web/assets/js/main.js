// The client's controller. Which page shows follows from the tokens in localStorage alone:
// none → login (or the forgotten password's page); must add a factor → enrolment; awaiting
// 2FA → two-factor; a password
// reset's session → two-factor while it owes one, then the new password; active → account. The URL's hash mirrors the page,
// so the back button moves between pages but can never show a page the tokens do not allow
// (after logout it lands on login, with the customer's details gone from memory).
// A security notice's "this wasn't me" link (`#lockdown=TOKEN`) shows the lockdown page
// whatever the tokens, until the customer confirms or cancels; its token is kept in memory only.

import { call } from './api.js';
import { messageFor } from './messages.js';
import { showAccount, showExpiry } from './pages/account.js';
import { showEnrol } from './pages/enrol.js';
import { showLockdown } from './pages/lockdown.js';
import { showLogin } from './pages/login.js';
import { showNewPassword } from './pages/new-password.js';
import { showReset } from './pages/reset.js';
import { showVerify } from './pages/verify.js';
import { cancelRenewal, scheduleRenewal } from './renewal.js';
import { KEYS, clearSession, readTokens } from './storage.js';

const PAGES = {
  '#/login': { show: showLogin, title: 'Sign in' },
  '#/reset': { show: showReset, title: 'Reset your password' },
  '#/lockdown': { show: showLockdown, title: 'Lock your account' },
  '#/new-password': { show: showNewPassword, title: 'Choose a new password' },
  '#/enrol': { show: showEnrol, title: 'Add a second step' },
  '#/verify': { show: showVerify, title: 'Check it’s you' },
  '#/account': { show: showAccount, title: 'Your account' },
};

function pageFor(tokens) {
  if (app.lockdown) return '#/lockdown';
  if (!tokens) return location.hash === '#/reset' ? '#/reset' : '#/login';
  if (tokens.enrolmentRequired) return '#/enrol';
  if (tokens.twoFactorRequired) return '#/verify';
  return tokens.passwordReset ? '#/new-password' : '#/account';
}

const app = {
  view: document.getElementById('view'),
  // The application state: the customer's details, once read.
  state: { customer: null },
  // The token of the lockdown link this page was opened with, until used or declined.
  lockdown: null,
  notice: null,
  timers: [],

  // A message for the login page, shown once.
  takeNotice() {
    const notice = this.notice;
    this.notice = null;
    return notice;
  },

  // Runs `fn` every `ms` while the current page shows.
  every(ms, fn) {
    this.timers.push(setInterval(fn, ms));
  },

  // Moves to the page the tokens call for, as a new history entry.
  navigate() {
    const page = pageFor(readTokens());
    if (location.hash === page) render();
    else location.hash = page;
  },

  // Ends the session here: clears localStorage and the state, back to login with `notice`.
  endLocally(notice) {
    clearSession();
    cancelRenewal();
    this.state.customer = null;
    this.notice = notice;
    this.navigate();
  },

  // Every session ended elsewhere (a lockdown): forgets this browser's, staying on the page.
  signedOutHere() {
    clearSession();
    cancelRenewal();
    this.state.customer = null;
    logoutButton.hidden = true;
  },

  // The server says the session is over (or not yet verified): acts and returns true.
  handleSessionError(failure) {
    if (failure.code === 'SESSION_EXPIRED' || failure.code === 'UNAUTHENTICATED') {
      this.endLocally(messageFor(failure));
      return true;
    }
    if (['TWO_FACTOR_REQUIRED', 'PASSWORD_RESET_IN_PROGRESS', 'TWO_FACTOR_ENROLMENT_REQUIRED'].includes(failure.code)) {
      this.navigate();
      return true;
    }
    return false;
  },
};

const logoutButton = document.getElementById('logout');

function keepRenewing() {
  scheduleRenewal((failure) => app.endLocally(messageFor(failure)));
}

// Takes a lockdown link's token out of the address (and so out of the history) at once.
function takeLockdownToken() {
  const prefix = '#lockdown=';
  if (!location.hash.startsWith(prefix)) return;
  try {
    app.lockdown = decodeURIComponent(location.hash.slice(prefix.length)) || null;
  } catch {
    // Not even a URL's escaping: an unknown link, which the server says in words.
    app.lockdown = location.hash.slice(prefix.length) || null;
  }
  history.replaceState(null, '', '#/lockdown');
}

function render() {
  takeLockdownToken();
  for (const timer of app.timers) clearInterval(timer);
  app.timers = [];
  const tokens = readTokens();
  const page = pageFor(tokens);
  if (location.hash !== page) history.replaceState(null, '', page);
  if (!tokens) app.state.customer = null;
  logoutButton.hidden = !tokens;
  logoutButton.disabled = false;
  document.title = `FinHub — ${PAGES[page].title}`;
  PAGES[page].show(app);
  // Each page focuses its first field; otherwise the heading, so screen readers start there.
  if (!app.view.contains(document.activeElement)) {
    const heading = app.view.querySelector('h1');
    heading.tabIndex = -1;
    heading.focus();
  }
  keepRenewing();
}

async function logout() {
  const tokens = readTokens();
  logoutButton.disabled = true;
  let notice = 'You have logged out.';
  if (tokens) {
    try {
      await call('POST', '/auth/logout', { token: tokens.bffToken, body: {} });
    } catch (failure) {
      // An ended session needs no ending; otherwise say that the server may still hold it.
      if (failure.code !== 'SESSION_EXPIRED' && failure.code !== 'UNAUTHENTICATED') {
        notice = `You are logged out on this device, but FinHub could not be told: ${messageFor(failure)}`;
      }
    }
  }
  app.endLocally(notice);
}

// Another tab changed the session: logged out, renewed, or finished 2FA.
function onStorage(event) {
  if (event.storageArea !== localStorage) return;
  if (event.key !== null && event.key !== KEYS.bffToken) return;
  const tokens = readTokens();
  if (!tokens) {
    if (['#/login', '#/reset', '#/lockdown'].includes(location.hash)) return;
    cancelRenewal();
    app.state.customer = null;
    app.notice = 'You logged out in another window.';
    app.navigate();
    return;
  }
  if (pageFor(tokens) !== location.hash) {
    app.navigate();
    return;
  }
  const page = app.view.firstElementChild;
  if (page && location.hash === '#/account') showExpiry(page);
  keepRenewing();
}

logoutButton.addEventListener('click', logout);
window.addEventListener('hashchange', render);
window.addEventListener('storage', onStorage);
// A hidden tab's timers may have run late: catch up as soon as it shows again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') keepRenewing();
});
// A page restored from the back-forward cache shows what the tokens allow now.
window.addEventListener('pageshow', (event) => {
  if (event.persisted) render();
});
render();
