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
