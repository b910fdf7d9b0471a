// "This wasn't me": the link in a security notice opens a page that explains, asks, and then
// signs everyone out and locks the account until the customer resets their password.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, PASSWORD, Service, accessibilityProblems, assertNoProblems, assertText, contextFor,
  signedInTab, sleep, useBrowser,
} from './support.js';

const browser = useBrowser();

// The lockdown link of the newest e-mailed notice of an unusual sign-in.
async function lockdownLink(service) {
  for (let i = 0; i < 100; i += 1) {
    const notice = service.messages().findLast((m) => m.notice === 'unusual_login' && m.channel === 'EMAIL');
    if (notice) return notice.lockdownUrl;
    await sleep(100);
  }
  throw new Error('no notice of the unusual sign-in reached the outbox');
}

test('a customer stops a thief from the link in the notice, then resets their password', async (t) => {
  const service = await Service.for(t);
  const mine = await contextFor(t, browser());
  const page = await signedInTab(mine, service, CUSTOMERS.ann);
  // The thief signs in on a device of their own: the notice of it carries the link.
  const theirs = await contextFor(t, browser());
  const thief = await signedInTab(theirs, service, CUSTOMERS.ann);
  const link = await lockdownLink(service);
  const token = link.split('#lockdown=')[1];
  assert.ok(token, link);

  // Opened, then declined: nothing changes, and the token has left the address bar.
  await page.goto(`${service.url}/#lockdown=${token}`);
  await page.getByRole('heading', { name: 'Wasn’t you? Lock your account' }).waitFor();
  assert.equal(new URL(page.url()).hash, '#/lockdown');
  assert.deepEqual(await accessibilityProblems(page), [], 'the lockdown page');
  await page.getByRole('button', { name: 'It was me: keep my account as it is' }).click();
  await page.getByRole('heading', { name: `Hello, ${CUSTOMERS.ann.firstName}` }).waitFor();
  assert.ok(!page.url().includes(token));

  // Opened again and confirmed: everyone is signed out, this browser too.
  await page.goto(`${service.url}/#lockdown=${token}`);
  await page.getByRole('button', { name: 'Lock my account' }).click();
  await assertText(page.getByRole('status'), 'Your account is locked and everyone is signed out.');
  assert.equal(await page.getByRole('button', { name: 'Log out' }).isVisible(), false);
  assert.deepEqual(await accessibilityProblems(page), [], 'the locked-down page');
  assert.equal(await page.evaluate(() => localStorage.getItem('finhub.bffToken')), null);
  await thief.reload();
  await thief.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await thief.getByLabel('Username').fill(CUSTOMERS.ann.username);
  await thief.getByLabel('Password').fill(PASSWORD);
  await thief.getByRole('button', { name: 'Sign in' }).click();
  await assertText(thief.getByRole('alert'), 'Your account is locked.');

  // The way out is a password reset.
  await page.getByRole('link', { name: 'Reset your password' }).click();
  await page.getByRole('heading', { name: 'Reset your password' }).waitFor();

  // The link was spent: a second use says so in words.
  const again = await mine.newPage();
  await again.goto(`${service.url}/#lockdown=${token}`);
  await again.getByRole('button', { name: 'Lock my account' }).click();
  await assertText(again.getByRole('alert'), 'This link has expired or was already used.');
  assert.equal(await again.getByRole('button', { name: 'Lock my account' }).isDisabled(), true);
  assertNoProblems(mine);
});
