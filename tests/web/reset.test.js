// The forgotten password from the login page: the e-mailed code, the customer's own second
// factor (never that mailbox) when they hold one, the new password, and signing in with it.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, PASSWORD, Service, accessibilityProblems, assertNoProblems, assertText, contextFor,
  sleep, useBrowser,
} from './support.js';

const browser = useBrowser();
const NEW_PASSWORD = 'Quiet-lantern-harbour-42';

// The reset code the outbox received after it held `after` messages.
async function resetCode(service, after) {
  for (let i = 0; i < 100; i += 1) {
    const line = service.messages().slice(after).find((m) => m.kind === 'password_reset');
    if (line) return line.code;
    await sleep(100);
  }
  throw new Error('no reset code reached the outbox');
}

// From the login page's link to the code's field; returns the code e-mailed.
async function askForReset(page, service, customer) {
  await page.goto(service.url);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
  assert.deepEqual(await accessibilityProblems(page), [], 'the reset page');
  const sent = service.messages().length;
  await page.getByLabel('Username').fill(customer.username);
  await page.getByRole('button', { name: 'Send the code' }).click();
  await page.getByLabel('6-digit code').waitFor();
  return resetCode(service, sent);
}

async function alertText(page) {
  const alert = page.getByRole('alert').filter({ hasText: /\S/ });
  await alert.waitFor();
  return alert.innerText();
}

// The new password's page: a refused password first, then a good one; ends on the login page.
async function chooseNewPassword(page) {
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  assert.deepEqual(await accessibilityProblems(page), [], 'the new password page');
  await page.getByLabel('New password', { exact: true }).fill('short-one');
  // zxcvbn's hint, loaded as the password is typed; the server's policy still decides.
  await page.waitForFunction(() => document.querySelector('[data-strength]').textContent.startsWith('Strength:'));
  await page.getByLabel('The new password again').fill('short-one');
  await page.getByRole('button', { name: 'Set the new password' }).click();
  assert.equal(await alertText(page), 'Choose another password: it is too short.');
  await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await page.waitForFunction(() => /^Strength: (strong|very strong)\./.test(document.querySelector('[data-strength]').textContent));
  await page.getByLabel('The new password again').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await assertText(page.getByRole('status'), 'Your password is reset, and you are signed out everywhere.');
}

async function signInWith(page, customer, password) {
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a customer without 2FA resets a forgotten password from the login page', async (t) => {
  const service = await Service.for(t);
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  const code = await askForReset(page, service, CUSTOMERS.ann);
  await assertText(page.locator('[data-sent-to]'), 'If ann@web.test has a FinHub account, we sent a 6-digit code');
  const wrong = code.replace(/^./, (d) => String((Number(d) + 1) % 10));
  await page.getByLabel('6-digit code').fill(wrong);
  await page.getByRole('button', { name: 'Continue' }).click();
  assert.equal(await alertText(page), 'That code is not right. You have 4 tries left.');
  await page.getByLabel('6-digit code').fill(code);
  await page.getByRole('button', { name: 'Continue' }).click();
  await chooseNewPassword(page);

  await signInWith(page, CUSTOMERS.ann, PASSWORD);
  assert.equal(await alertText(page), 'That username or password is not right. Check both and try again.');
  await signInWith(page, CUSTOMERS.ann, NEW_PASSWORD);
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assertNoProblems(context);
});

test('a customer with SMS 2FA proves it before choosing the new password', async (t) => {
  const service = await Service.for(t);
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  const code = await askForReset(page, service, CUSTOMERS.ben);
  const sent = service.messages().length;
  await page.getByLabel('6-digit code').fill(code);
  await page.getByRole('button', { name: 'Continue' }).click();
  // The mailbox that got the reset code does not count twice: the code goes by text message.
  await page.getByRole('heading', { name: 'Check it’s you' }).waitFor();
  await page.locator('[data-sent]').waitFor();
  await assertText(page.locator('[data-sent]'), 'We sent a 6-digit code by text message');
  await page.getByLabel('6-digit code').fill(await service.nextCode(sent));
  await page.getByRole('button', { name: 'Verify' }).click();
  await chooseNewPassword(page);

  await signInWith(page, CUSTOMERS.ben, NEW_PASSWORD);
  await page.getByRole('heading', { name: 'Check it’s you' }).waitFor();
  assertNoProblems(context);
});
