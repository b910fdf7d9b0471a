// Enrolment when FinHub requires a second factor of everyone: a customer without one adds an
// authenticator app or a phone, confirms it, and only then sees their account.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, Service, accessibilityProblems, assertNoProblems, assertText, contextFor, signIn,
  sleep, totp, useBrowser,
} from './support.js';

const browser = useBrowser();
const REQUIRED = { FINHUB_REQUIRE_2FA: 'true', FINHUB_AUDIT_KEY: 'the-audit-key-of-the-web-tests-of-the-app' };

test('a customer without a factor adds an authenticator app before seeing the account', async (t) => {
  const service = await Service.for(t, { env: REQUIRED });
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await signIn(page, service, CUSTOMERS.ann);
  await page.getByRole('heading', { name: 'Add a second step' }).waitFor();
  assert.deepEqual(await accessibilityProblems(page), [], 'the enrolment page');
  // The account cannot be reached before: its address leads back here.
  await page.goto(`${service.url}/#/account`);
  await page.getByRole('heading', { name: 'Add a second step' }).waitFor();
  assert.equal(new URL(page.url()).hash, '#/enrol');
  await page.getByRole('button', { name: 'Use an authenticator app' }).click();
  await page.getByRole('img', { name: 'QR code of the key for your authenticator app' }).waitFor();
  const secret = (await page.locator('[data-secret]').innerText()).replace(/\s/g, '');
  await page.getByLabel('6-digit code').fill(totp(secret, Date.now()));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  await assertText(page.locator('[data-field="twoFactor"]'), 'a code from your authenticator app');
  assertNoProblems(context);
});

test('or a phone, confirmed by the code sent to it', async (t) => {
  const service = await Service.for(t, { env: REQUIRED });
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await signIn(page, service, CUSTOMERS.ann);
  await page.getByRole('heading', { name: 'Add a second step' }).waitFor();
  const sent = service.messages().length;
  await page.getByLabel('Or a mobile number for text messages').fill('+44 7700 900555');
  await page.getByRole('button', { name: 'Send a code to this number' }).click();
  await page.locator('[data-code-sent]').waitFor();
  await assertText(page.locator('[data-code-sent]'), 'We sent a 6-digit code by text message to');
  let line;
  for (let i = 0; i < 100 && !line; i += 1) {
    line = service.messages().slice(sent).find((m) => m.kind === 'factor_code');
    if (!line) await sleep(100);
  }
  assert.equal(line.to, '+447700900555', 'the code goes to the new phone');
  await page.getByLabel('6-digit code').fill(line.code);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assertNoProblems(context);
});
