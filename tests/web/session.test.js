// Renewal before expiry, tabs sharing one session, and a session that ends.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, Service, assertNoProblems, assertText, useBrowser, contextFor, anotherTab, signedInTab, sleep, storage,
} from './support.js';

const browser = useBrowser();

// Resolves once localStorage's bffToken differs from `token`.
function tokenChange(page, token, timeout) {
  return page.waitForFunction((old) => {
    const now = localStorage.getItem('finhub.bffToken');
    return now && now !== old;
  }, token, { timeout, polling: 100 });
}

test('two tabs share one session: one renews before expiry, both use the new tokens', async (t) => {
  // 8 s sessions: renewed 2 s before the end (a quarter of the lifetime).
  const service = await Service.for(t, { env: { FINHUB_SESSION_TTL: '8s' } });
  const context = await contextFor(t, browser());
  const refreshes = [];
  context.on('request', (request) => {
    if (request.url().endsWith('/auth/token/refresh')) refreshes.push(request.url());
  });
  const first = await signedInTab(context, service, CUSTOMERS.ann);
  const second = await anotherTab(context, service, CUSTOMERS.ann);

  const original = (await storage(first))['finhub.bffToken'];
  await tokenChange(first, original, 10_000);
  const renewed = (await storage(first))['finhub.bffToken'];
  await tokenChange(first, renewed, 10_000);
  // Past two lifetimes of the first token, two renewals in all: never one per tab.
  assert.equal(refreshes.length, 2, 'one renewal per lifetime, whatever the number of tabs');
  assert.equal((await service.api('GET', '/customers/me', { token: original })).status, 401);

  // The second tab picked the tokens up: its calls use them and the session is alive.
  const current = (await storage(second))['finhub.bffToken'];
  assert.equal(current, (await storage(first))['finhub.bffToken']);
  await second.reload();
  await second.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assert.equal((await service.api('GET', '/customers/me', { token: current })).status, 200);
  assertNoProblems(context);
});

test('logout in one tab signs the other out', async (t) => {
  const service = await Service.for(t);
  const context = await contextFor(t, browser());
  const first = await signedInTab(context, service, CUSTOMERS.ann);
  const second = await anotherTab(context, service, CUSTOMERS.ann);

  await first.getByRole('button', { name: 'Log out' }).click();
  await second.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await assertText(second.locator('#view'), 'You logged out in another window.');
  assert.ok(!(await second.locator('body').innerText()).includes('Ann Plain'));
  assertNoProblems(context);
});

test('an expired session returns to login with a message', async (t) => {
  const service = await Service.for(t, { env: { FINHUB_SESSION_IDLE_TIMEOUT: '2s' } });
  const context = await contextFor(t, browser());
  const page = await signedInTab(context, service, CUSTOMERS.ann);
  await sleep(3_000);
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await assertText(page.locator('#view'), 'Your session has ended. Please sign in again.');
  assert.deepEqual(Object.keys(await storage(page)), ['finhub.deviceId']);
  assertNoProblems(context);
});

test('a revoked session returns to login with a message', async (t) => {
  const service = await Service.for(t);
  const context = await contextFor(t, browser());
  const page = await signedInTab(context, service, CUSTOMERS.ann);
  const token = (await storage(page))['finhub.bffToken'];
  assert.equal((await service.api('POST', '/auth/logout', { token, body: { scope: 'all' } })).status, 204);
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await assertText(page.locator('#view'), 'You are signed out. Please sign in again.');
  assertNoProblems(context);
});
