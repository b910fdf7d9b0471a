// The page itself: headers, hostile customer data shown as text, no token in a URL, weight,
// a phone-sized screen, and an accessibility check of every page.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, Service, accessibilityProblems, assertNoProblems, assertText, useBrowser, contextFor,
  screenshot, signIn, storage,
} from './support.js';

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
  + "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const browser = useBrowser();
const shared = Service.shared();

test('every page, asset and API answer carries the security headers', async (t) => {
  const service = shared();
  for (const path of ['/', '/assets/js/main.js', '/assets/app.css', '/api/v1/customers/me', '/no-such-page']) {
    const response = await fetch(`${service.url}${path}`);
    assert.equal(response.headers.get('content-security-policy'), CSP, path);
    assert.equal(response.headers.get('x-frame-options'), 'DENY', path);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer', path);
  }
  const page = await fetch(service.url);
  assert.equal(page.headers.get('cache-control'), 'no-store');
  assert.match(page.headers.get('content-type'), /^text\/html/);

  const asset = await fetch(`${service.url}/assets/js/main.js`);
  assert.equal(asset.headers.get('cache-control'), 'no-cache');
  assert.match(asset.headers.get('content-type'), /javascript/);
  const etag = asset.headers.get('etag');
  assert.match(etag, /^"[A-Za-z0-9_-]+"$/);
  const again = await fetch(`${service.url}/assets/js/main.js`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${service.url}/assets/nothing.js`)).status, 404);
  assert.equal((await fetch(`${service.url}/demo/inbox`)).status, 404, 'no demo inbox outside demo mode');
});

test('hostile names are shown as text and run nothing', async (t) => {
  const service = shared();
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  await signIn(page, service, CUSTOMERS.mallory);
  await page.getByRole('heading', { name: /^Hello, / }).waitFor();
  await assertText(page.locator('#view'), CUSTOMERS.mallory.firstName);
  await assertText(page.locator('#view'), CUSTOMERS.mallory.lastName);
  await assertText(page.locator('#view'), 'Not accepted');
  assert.equal(await page.evaluate(() => window.__injected), undefined, 'no injected script ran');
  assert.equal(await page.locator('#view img, #view script').count(), 0);
  assertNoProblems(context);
});

test('no token in any URL, and a page load under 100 KB', async (t) => {
  const service = shared();
  const context = await contextFor(t, browser());
  const page = await context.newPage();
  const urls = [];
  let bytes = 0;
  page.on('request', (request) => urls.push(request.url()));
  page.on('response', async (response) => {
    if (!response.url().includes('/api/')) bytes += (await response.body().catch(() => Buffer.alloc(0))).length;
  });
  await signIn(page, service, CUSTOMERS.ann);
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  const kept = await storage(page);
  for (const url of [...urls, page.url()]) {
    assert.ok(!url.includes(kept['finhub.bffToken']) && !url.includes(kept['finhub.refreshToken']), url);
  }
  assert.ok(bytes > 0 && bytes < 100 * 1024, `page load is ${bytes} bytes`);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  assertNoProblems(context);
});

test('a 360-pixel phone screen, light and dark, and no serious accessibility problem on any page', async (t) => {
  const service = shared();
  for (const colorScheme of ['light', 'dark']) {
    const context = await contextFor(t, browser(), { viewport: { width: 360, height: 740 }, colorScheme });
    const page = await context.newPage();
    const sent = service.messages().length;
    const check = async (name) => {
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `${name}: no sideways scrolling (${width} px)`);
      assert.deepEqual(await accessibilityProblems(page), [], `${name} (${colorScheme})`);
      await screenshot(page, `phone-${colorScheme}-${name}`);
    };
    await page.goto(service.url);
    await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
    await check('login');
    await signIn(page, service, CUSTOMERS.ben);
    await page.getByRole('heading', { name: 'Check it’s you' }).waitFor();
    await page.locator('[data-sent]').waitFor();
    await check('two-factor');
    await page.getByLabel('6-digit code').fill(await service.nextCode(sent));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('heading', { name: 'Hello, Ben' }).waitFor();
    await check('account');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
    assertNoProblems(context);
  }
});
