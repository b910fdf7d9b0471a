// The account page's "Sign-in and security": changing the password after confirming it is
// them (a step-up by the customer's own factor), and recovery codes shown once and downloaded.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  CUSTOMERS, PASSWORD, Service, accessibilityProblems, assertNoProblems, assertText, contextFor,
  signIn, sleep, totp, useBrowser,
} from './support.js';

const browser = useBrowser();
const NEW_PASSWORD = 'Quiet-lantern-harbour-42';

// Ben (SMS 2FA) signs in and sees his account.
async function signedInBen(context, service) {
  const page = await context.newPage();
  const sent = service.messages().length;
  await signIn(page, service, CUSTOMERS.ben);
  await page.locator('[data-sent]').waitFor();
  await page.getByLabel('6-digit code').fill(await service.nextCode(sent));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Hello, Ben' }).waitFor();
  return page;
}

test('a signed-in customer confirms it is them, then changes the password', async (t) => {
  // The step-up's code may follow the login's at once.
  const service = await Service.for(t, { env: { FINHUB_RECENT_AUTH_WINDOW: '1s', FINHUB_2FA_RESEND_INTERVAL: '0s' } });
  const context = await contextFor(t, browser());
  const page = await signedInBen(context, service);
  await sleep(1_200);
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await page.waitForFunction(() => /^Strength: /.test(document.querySelector('[data-password-form] [data-strength]').textContent));
  await page.getByLabel('The new password again').fill(NEW_PASSWORD);
  const sent = service.messages().length;
  await page.getByRole('button', { name: 'Change password' }).click();
  // The login's code is no longer recent: the page asks for a fresh one by the customer's factor.
  await page.getByRole('heading', { name: 'Confirm it’s you' }).waitFor();
  await assertText(page.locator('[data-step-up-text]'), 'We sent a 6-digit code by text message to');
  assert.deepEqual(await accessibilityProblems(page), [], 'the account page with a step-up');
  await page.locator('#step-up-code').fill(await service.nextCode(sent));
  await page.getByRole('button', { name: 'Confirm', exact: true }).click();
  const notice = page.locator('[data-credentials-notice]');
  await notice.waitFor();
  assert.equal(await notice.innerText(), 'Your password is changed. You are signed out everywhere else.');

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('Username').fill(CUSTOMERS.ben.username);
  await page.getByLabel('Password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Check it’s you' }).waitFor();
  assertNoProblems(context);
});

test('recovery codes are shown once and download as a text file', async (t) => {
  const service = await Service.for(t);
  const context = await contextFor(t, browser(), { acceptDownloads: true });
  const page = await signedInBen(context, service);
  await page.getByRole('button', { name: 'Make new recovery codes' }).click();
  const list = page.locator('[data-recovery-list] li');
  await list.first().waitFor();
  const codes = await list.allInnerTexts();
  assert.equal(codes.length, 10);
  for (const code of codes) assert.match(code, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download as a text file' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'finhub-recovery-codes.txt');
  const text = readFileSync(await download.path(), 'utf8');
  for (const code of codes) assert.ok(text.includes(code), code);
  // Once saved, they leave the page.
  await page.getByRole('button', { name: 'I have saved them' }).click();
  assert.equal(await list.count(), 0);

  // Without the phone, a recovery code signs in, typed any which way, once.
  await page.getByRole('button', { name: 'Log out' }).click();
  await signIn(page, service, CUSTOMERS.ben);
  await page.locator('[data-sent]').waitFor();
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await page.getByLabel('Recovery code').fill('AAAAA-AAAAA');
  await page.getByRole('button', { name: 'Use this code' }).click();
  await assertText(page.getByRole('alert').filter({ hasText: /\S/ }), 'That recovery code is not right, or was used already.');
  await page.getByLabel('Recovery code').fill(codes[0].toLowerCase().replace('-', ' '));
  await page.getByRole('button', { name: 'Use this code' }).click();
  await page.getByRole('heading', { name: 'Hello, Ben' }).waitFor();
  // A code works once.
  await page.getByRole('button', { name: 'Log out' }).click();
  await signIn(page, service, CUSTOMERS.ben);
  await page.locator('[data-sent]').waitFor();
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await page.getByLabel('Recovery code').fill(codes[0]);
  await page.getByRole('button', { name: 'Use this code' }).click();
  await assertText(page.getByRole('alert').filter({ hasText: /\S/ }), 'That recovery code is not right, or was used already.');
  assertNoProblems(context);
});

test('an authenticator app is added from a QR code drawn in the page, then asked for at sign-in', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_AUDIT_KEY: 'the-audit-key-of-the-web-tests-of-the-app' } });
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  const requests = [];
  page.on('request', (request) => requests.push(new URL(request.url()).origin));
  await signIn(page, service, CUSTOMERS.ann);
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const qr = page.getByRole('img', { name: 'QR code of the key for your authenticator app' });
  await qr.waitFor();
  const drawn = await qr.evaluate((canvas) => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let dark = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i] === 0) dark += 1;
    return { width: canvas.width, dark };
  });
  assert.ok(drawn.width >= 100 && drawn.dark > 100, JSON.stringify(drawn));
  assert.deepEqual([...new Set(requests)], [service.url], 'no third-party request');
  assert.deepEqual(await accessibilityProblems(page), [], 'the account page adding an app');
  const secret = (await page.locator('[data-app-secret]').innerText()).replace(/\s/g, '');
  await page.getByLabel('The 6-digit code the app shows').fill(totp(secret, Date.now()));
  await page.getByRole('button', { name: 'Add the app' }).click();
  await page.locator('[data-credentials-notice]').waitFor();
  await assertText(page.locator('[data-credentials-notice]'), 'Your authenticator app is added.');

  await page.getByRole('button', { name: 'Log out' }).click();
  await signIn(page, service, CUSTOMERS.ann);
  await page.locator('[data-app]').waitFor();
  // The step the app's code was confirmed with is spent: the next one (within the drift
  // allowed) signs in.
  await page.getByLabel('6-digit code').fill(totp(secret, Date.now() + 30_000));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assertNoProblems(context);
});

test('a new mailbox is confirmed by the code sent to it', async (t) => {
  // Its code may follow the login's at once.
  const service = await Service.for(t, { env: { FINHUB_2FA_RESEND_INTERVAL: '0s' } });
  const context = await contextFor(t, browser());
  const page = await signedInBen(context, service);
  const sent = service.messages().length;
  await page.getByLabel('A mobile number (+44…) or an e-mail address').fill('ben.new@web.test');
  await page.getByRole('button', { name: 'Send a code to confirm it' }).click();
  await page.locator('[data-contact-sent]').waitFor();
  let line;
  for (let i = 0; i < 100 && !line; i += 1) {
    line = service.messages().slice(sent).find((m) => m.kind === 'factor_code');
    if (!line) await sleep(100);
  }
  assert.equal(line.to, 'ben.new@web.test', 'the code goes to the new mailbox');
  await page.locator('#contact-code').fill(line.code);
  await page.getByRole('button', { name: 'Confirm', exact: true }).click();
  await page.locator('[data-credentials-notice]').waitFor();
  await assertText(page.locator('[data-credentials-notice]'), 'is added: codes can go there now.');

  // Listed beside the phone; asked for first, then removed.
  const factors = page.locator('[data-factors] li');
  await page.waitForFunction(() => document.querySelectorAll('[data-factors] li').length === 2);
  assert.match((await factors.allInnerTexts()).join('\n'), /Text messages · \+44\*+23 · asked for first/);
  await page.getByRole('button', { name: 'Ask for this first: E-mail' }).click();
  await page.waitForFunction(() => document.querySelector('[data-factors]').innerText.includes('E-mail · b'));
  await page.waitForFunction(() => /E-mail[^]*asked for first/.test(document.querySelector('[data-factors]').innerText));
  await page.getByRole('button', { name: 'Remove: E-mail' }).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-factors] li').length === 1);
  await assertText(page.locator('[data-credentials-notice]'), 'Removed.');
  assertNoProblems(context);
});
