// A sentence in words for every error the login page can meet, next to the form, with focus
// moved to it.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, PASSWORD, Service, assertNoProblems, assertText, useBrowser, contextFor,
} from './support.js';

const browser = useBrowser();

async function attempt(page, username, password) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const error = page.getByRole('alert');
  await error.waitFor();
  const text = await error.innerText();
  assert.ok(await error.evaluate((element) => element === document.activeElement), 'focus is on the error');
  await page.waitForFunction(() => !document.querySelector('button[type="submit"]').disabled);
  return text;
}

test('wrong credentials, then locked with the time it unlocks', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_LOCKOUT_THRESHOLD: '3' } });
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await page.goto(service.url);

  const empty = await attempt(page, '', '');
  assert.equal(empty, 'Enter your username.');
  for (let i = 0; i < 3; i += 1) {
    const text = await attempt(page, CUSTOMERS.ann.username, 'not-the-password');
    assert.equal(text, 'That username or password is not right. Check both and try again.');
    assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password field is cleared');
  }
  const locked = await attempt(page, CUSTOMERS.ann.username, PASSWORD);
  const until = (await service.api('POST', '/auth/token', { body: { username: CUSTOMERS.ann.username, password: PASSWORD } })).body.lockedUntil;
  // The time alone when the lock ends today, with the date when it ends on another day (a
  // lock taken just before midnight).
  const localTime = await page.evaluate((iso) => {
    const date = new Date(iso);
    const today = date.toDateString() === new Date().toDateString();
    const style = today ? { timeStyle: 'short' } : { dateStyle: 'medium', timeStyle: 'short' };
    return new Intl.DateTimeFormat(undefined, style).format(date);
  }, until);
  assert.equal(locked, `Your account is locked after too many failed attempts. You can try again at ${localTime}.`);
  assertNoProblems(context);
});

test('rate limited, with the wait', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_RATE_LIMIT_LOGIN_IP: '2/min' } });
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await page.goto(service.url);
  await attempt(page, CUSTOMERS.ann.username, 'wrong-1');
  await attempt(page, CUSTOMERS.ann.username, 'wrong-2');
  const text = await attempt(page, CUSTOMERS.ann.username, 'wrong-3');
  assert.match(text, /^Too many attempts in a short time\. Please wait \d+ seconds and try again\.$/);
  assertNoProblems(context);
});

test('service unavailable and network down', async (t) => {
  const service = await Service.for(t);
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await page.goto(service.url);

  // An overloaded service (the server's own 503 is tested against the API).
  await page.route('**/api/v1/auth/token', (route) => route.fulfill({
    status: 503,
    headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '30' },
    body: JSON.stringify({ status: 503, code: 'SERVICE_UNAVAILABLE', title: 'Service unavailable' }),
  }));
  assert.equal(await attempt(page, CUSTOMERS.ann.username, PASSWORD), 'FinHub is busy right now. Please try again in 30 seconds.');
  await page.unroute('**/api/v1/auth/token');

  await service.stop();
  assert.equal(await attempt(page, CUSTOMERS.ann.username, PASSWORD), 'We cannot reach FinHub. Check your internet connection and try again.');
  const shown = await page.locator('body').innerText();
  assert.ok(!/NETWORK|SERVICE_UNAVAILABLE|TypeError/.test(shown), 'no raw codes or exceptions');
});
