// `finhub-auth demo`: a person completes 2FA in the browser with the code from the demo inbox.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Service, assertNoProblems, useBrowser, contextFor, screenshot } from './support.js';

const browser = useBrowser();
const shared = Service.shared({ demo: true });

test('the demo inbox shows the code that completes the sign-in', async (t) => {
  const service = shared();
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await page.goto(service.url);
  await page.getByLabel('Username').fill('bob@demo.finhub.test');
  await page.getByLabel('Password').fill('finhub-demo-2026');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Check it’s you' }).waitFor();
  await page.locator('[data-sent]').waitFor();

  const inbox = await context.newPage();
  await inbox.goto(`${service.url}/demo/inbox`);
  await inbox.getByText('Demo only').waitFor();
  const code = inbox.locator('.inbox .code').first();
  await code.waitFor();
  const digits = await code.innerText();
  assert.match(digits, /^[0-9]{6}$/);
  assert.equal(digits, service.messages().findLast((m) => m.code).code);
  await screenshot(inbox, 'demo-inbox');

  await page.getByLabel('6-digit code').fill(digits);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Hello, Bob' }).waitFor();
  assertNoProblems(context);
});

test('a notice in the demo inbox offers its "this wasn\'t me" link', async (t) => {
  const service = shared();
  // Alice signs in on two browsers: the second is a new device, which she is told of.
  for (let i = 0; i < 2; i += 1) {
    const context = await contextFor(t, browser());
    const page = await context.newPage();
    await page.goto(service.url);
    await page.getByLabel('Username').fill('alice@demo.finhub.test');
    await page.getByLabel('Password').fill('finhub-demo-2026');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Hello, Alice' }).waitFor();
  }
  const context = await contextFor(t, browser());
  const inbox = await context.newPage();
  await inbox.goto(`${service.url}/demo/inbox`);
  const link = inbox.getByRole('link', { name: 'This wasn’t me: lock my account' }).first();
  await link.waitFor();
  const href = await link.getAttribute('href');
  assert.ok(href.includes('#lockdown='), href);
  assert.equal(href, service.messages().findLast((m) => m.lockdownUrl).lockdownUrl);
  // The notice carries no code, so none is shown for it.
  assert.equal(await inbox.locator('.inbox li').first().locator('.code').innerText(), '');
  assertNoProblems(context);
});
