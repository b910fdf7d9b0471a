// The seed's flow in the browser: login, 2FA when enabled, the account, logout.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, Service, assertNoProblems, assertText, useBrowser, contextFor, pasteInto, screenshot, signIn, signedInTab, storage,
} from './support.js';

const browser = useBrowser();
const shared = Service.shared();

test('without 2FA: login, account, logout; the back button then shows no customer data', async (t) => {
  const service = shared();
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  const logins = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/api/v1/auth/token')) logins.push(request.postDataJSON());
  });
  await page.goto(service.url);
  await screenshot(page, 'login');
  // The password is masked, and the browser may offer its password manager.
  const password = page.locator('#password');
  assert.equal(await password.getAttribute('type'), 'password');
  assert.equal(await password.getAttribute('autocomplete'), 'current-password');
  await signIn(page, service, CUSTOMERS.ann);

  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  const account = page.locator('#view');
  await assertText(account, 'Ann Plain');
  await assertText(account, 'Verified');
  await assertText(account, 'Every FinHub service is open to you.');
  await assertText(account, 'Off: signing in needs your password only.');
  await assertText(account, 'This is your first sign-in.');
  await screenshot(page, 'account');

  // The seed's storage: tokens and expiry in localStorage; a device on the login request.
  const kept = await storage(page);
  for (const key of ['finhub.bffToken', 'finhub.refreshToken', 'finhub.expiresAt', 'finhub.sessionId']) {
    assert.ok(kept[key], `${key} is stored`);
  }
  assert.equal(kept['finhub.twoFactorRequired'], 'false');
  assert.match(kept['finhub.deviceId'], /^[0-9a-f]{32}$/);
  assert.equal(logins.length, 1);
  assert.ok(logins[0].device.fingerprint.startsWith(kept['finhub.deviceId']));
  assert.match(logins[0].device.name, /^Chrome on Linux$/);
  assert.equal((await service.api('GET', '/customers/me', { token: kept['finhub.bffToken'] })).status, 200);

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await assertText(page.locator('#view'), 'You have logged out.');
  assert.deepEqual(Object.keys(await storage(page)), ['finhub.deviceId'], 'only the device id stays');
  // Ended on the server, not just forgotten here.
  assert.equal((await service.api('GET', '/customers/me', { token: kept['finhub.bffToken'] })).status, 401);

  await page.goBack();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  const shown = await page.locator('body').innerText();
  for (const secret of ['Ann Plain', 'ann@web.test', '+447700900111', 'Verified']) {
    assert.ok(!shown.includes(secret), `"${secret}" is not shown after logout`);
  }
  assert.equal(await page.getByRole('button', { name: 'Log out' }).isVisible(), false);
  assertNoProblems(context);
});

test('with 2FA: masked destination, a pasted code, then the account', async (t) => {
  const service = shared();
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  const sent = service.messages().length;
  await signIn(page, service, CUSTOMERS.ben);

  await page.getByRole('heading', { name: 'Check it’s you' }).waitFor();
  await page.locator('[data-sent]').waitFor();
  await assertText(page.locator('[data-sent]'), 'text message');
  const destination = await page.locator('[data-destination]').innerText();
  assert.match(destination, /^\+44\*+23$/, 'the phone number is masked');
  assert.equal((await storage(page))['finhub.twoFactorRequired'], 'true');
  assert.equal(await page.getByRole('button', { name: 'Log out' }).isVisible(), true);
  await screenshot(page, 'two-factor');

  const code = await service.nextCode(sent);
  await pasteInto(page.getByLabel('6-digit code'), `Your FinHub code: ${code.slice(0, 3)} ${code.slice(3)}`);

  await page.getByRole('heading', { name: 'Hello, Ben' }).waitFor();
  await assertText(page.locator('#view'), 'Being checked');
  await assertText(page.locator('#view'), 'On: each sign-in also needs a code sent by text message to +44');
  const kept = await storage(page);
  assert.equal(kept['finhub.twoFactorRequired'], 'false');
  assert.equal(kept['finhub.challenge'], undefined, 'the spent challenge is forgotten');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  assertNoProblems(context);
});

test('a reload keeps the signed-in customer on their page', async (t) => {
  const service = shared();
  const context = await contextFor(t, browser());
  const page = await signedInTab(context, service, CUSTOMERS.ann);
  await page.reload();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assert.ok(page.url().endsWith('#/account'));
  assertNoProblems(context);
});
