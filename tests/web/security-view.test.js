// The account page's "Security" section: sessions, devices and recent activity, with "end this
// session" and "forget this device".

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CUSTOMERS, PASSWORD, Service, assertNoProblems, assertText, contextFor, screenshot, signedInTab, useBrowser,
} from './support.js';

const browser = useBrowser();

async function loginElsewhere(service, fingerprint, name) {
  const { status, body } = await service.api('POST', '/auth/token', {
    body: { username: CUSTOMERS.ann.username, password: PASSWORD, device: { fingerprint, name } },
  });
  assert.equal(status, 200);
  return body.bffToken;
}

test('the customer sees where they are signed in, ends a session and forgets a device', async (t) => {
  const service = await Service.for(t);
  const phone = await loginElsewhere(service, 'old-phone', 'Old phone');
  const tablet = await loginElsewhere(service, 'tablet', 'Tablet');
  const context = await contextFor(t, browser());
  const page = await signedInTab(context, service, CUSTOMERS.ann);
  const security = page.locator('[data-security]');
  await security.getByText('Chrome on Linux (this browser)').waitFor();
  await assertText(security.locator('[data-sessions]'), 'Old phone');
  await assertText(security.locator('[data-sessions]'), 'Tablet');
  // A name the device gave itself is marked as such, never shown as FinHub's own words.
  await assertText(security.locator('[data-devices]'), 'Name given by the device at sign-in');
  await assertText(security.locator('[data-events]'), 'Unusual: new device');
  await screenshot(page, 'account-security');

  // End the phone's session: refused by the service from then on.
  const phoneItem = security.locator('[data-sessions] li', { hasText: 'Old phone' });
  await phoneItem.getByRole('button', { name: 'End this session' }).click();
  await security.getByRole('status').filter({ hasText: 'That session has ended.' }).waitFor();
  assert.equal((await service.api('GET', '/customers/me', { token: phone })).status, 401);
  assert.equal(await security.locator('[data-sessions] li', { hasText: 'Old phone' }).count(), 0);
  assert.equal(await security.locator('[data-sessions] li', { hasText: 'this browser' }).getByRole('button').count(), 0,
    'no "end" button on the current session: that is what "Log out" is for');

  // Forget the tablet: its session ends too.
  const tabletItem = security.locator('[data-devices] li', { hasText: 'Tablet' });
  await tabletItem.getByRole('button', { name: 'Forget this device' }).click();
  await security.getByRole('status').filter({ hasText: 'The device is forgotten' }).waitFor();
  assert.equal((await service.api('GET', '/customers/me', { token: tablet })).status, 401);
  assert.equal(await security.locator('[data-devices] li', { hasText: 'Tablet' }).count(), 0);

  // Forgetting this browser's own device ends this session: back to login.
  const own = security.locator('[data-devices] li', { hasText: 'Chrome on Linux' });
  await own.getByRole('button', { name: 'Forget this device' }).click();
  await page.getByRole('heading', { name: 'Sign in to FinHub' }).waitFor();
  await assertText(page.locator('#view'), 'You are signed out. Please sign in again.');
  assertNoProblems(context);
});
