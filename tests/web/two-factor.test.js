// The two-factor page: wrong, expired and exhausted codes, and resend with its countdown.

import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { test } from 'node:test';

import {
  CUSTOMERS, Service, assertNoProblems, useBrowser, contextFor, signIn, sleep,
} from './support.js';

const browser = useBrowser();

async function enter(page, code) {
  await page.getByLabel('6-digit code').fill(code);
  await page.getByRole('button', { name: 'Verify' }).click();
  const error = page.getByRole('alert');
  await error.waitFor();
  await page.waitForFunction(() => !document.querySelector('button[type="submit"]').disabled);
  return error.innerText();
}

async function pendingLogin(service, context) {
  const page = await context.newPage();
  const sent = service.messages().length;
  await signIn(page, service, CUSTOMERS.ben);
  await page.locator('[data-sent]').waitFor();
  return { page, code: await service.nextCode(sent) };
}

function wrong(code) {
  return code.replace(/^./, (d) => String((Number(d) + 1) % 10));
}

test('wrong codes show the tries left, then too many attempts', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_LOCKOUT_THRESHOLD: '20' } });
  const context = await contextFor(t, browser());
  const { page, code } = await pendingLogin(service, context);
  assert.equal(await enter(page, wrong(code)), 'That code is not right. You have 4 tries left.');
  assert.equal(await page.getByLabel('6-digit code').inputValue(), '');
  for (const left of [3, 2]) {
    assert.equal(await enter(page, wrong(code)), `That code is not right. You have ${left} tries left.`);
  }
  assert.equal(await enter(page, wrong(code)), 'That code is not right. You have 1 try left.');
  assert.equal(await enter(page, wrong(code)), 'That code is not right, and that was the last try for it. Ask for a new code.');
  // The burnt challenge no longer takes even the right code.
  assert.match(await enter(page, code), /^Too many codes were tried or sent\. You can ask for a new code in \d+ seconds\.$/);
  assertNoProblems(context);
});

test('an expired code says so', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_2FA_CODE_TTL: '2s' } });
  const context = await contextFor(t, browser());
  const { page, code } = await pendingLogin(service, context);
  await sleep(2_500);
  assert.equal(await enter(page, code), 'That code has expired. Send a new code and enter it soon after it arrives.');
  assertNoProblems(context);
});

test('resend waits out its countdown, then sends a code that works', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_2FA_RESEND_INTERVAL: '3s' } });
  const context = await contextFor(t, browser());
  const { page } = await pendingLogin(service, context);
  const resend = page.getByRole('button', { name: 'Send a new code' });
  assert.equal(await resend.isDisabled(), true);
  assert.match(await page.locator('[data-countdown]').innerText(), /^You can ask for a new code in [1-3] s\.$/);
  await page.waitForFunction(() => !document.querySelector('[data-resend]').disabled, null, { timeout: 6_000 });
  assert.equal(await page.locator('[data-countdown]').innerText(), '');

  const sent = service.messages().length;
  await resend.click();
  const fresh = await service.nextCode(sent);
  await page.waitForFunction(() => document.querySelector('[data-resend]').disabled);
  await page.getByLabel('6-digit code').fill(fresh);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Hello, Ben' }).waitFor();
  assertNoProblems(context);
});

test('a code that could not be sent is reported, and a new one can be asked for at once', async (t) => {
  // The outbox file cannot be written (a directory stands in its place), and one attempt is all.
  const service = await Service.for(t, {
    env: { FINHUB_OUTBOX_PATH: tmpdir(), FINHUB_DELIVERY_ATTEMPTS: '1' },
  });
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await signIn(page, service, CUSTOMERS.ben);
  await page.locator('[data-sent]').waitFor();
  const alert = page.getByRole('alert');
  await alert.waitFor({ timeout: 15_000 });
  assert.equal(await alert.innerText(), 'We could not send your code. Ask for a new one.');
  const resend = page.getByRole('button', { name: 'Send a new code' });
  assert.equal(await resend.isEnabled(), true, 'no countdown to wait out');
  assertNoProblems(context);
});
