// Passkeys in the web client, with Chromium's virtual authenticator (a platform authenticator
// with user verification and discoverable credentials): added on "Sign-in and security", used
// to sign in without a password, asked for at the two-step and at a step-up.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';

import {
  CUSTOMERS, PASSWORD, Service, accessibilityProblems, assertNoProblems, contextFor, sleep,
  useBrowser,
} from './support.js';

const browser = useBrowser();

// A port free now, so that the service's origin (which passkeys are bound to) is known before
// it starts.
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// A service whose passkeys belong to http://localhost:<port>, where the page is opened.
async function passkeyService(t, env = {}) {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const service = await Service.for(t, {
    env: {
      FINHUB_LISTEN: `127.0.0.1:${port}`,
      FINHUB_WEBAUTHN_RP_ID: 'localhost',
      FINHUB_WEBAUTHN_ORIGIN: origin,
      ...env,
    },
  });
  return { service, origin };
}

// A page with a virtual authenticator that verifies its user without asking.
async function pageWithAuthenticator(context) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
  return { page, credentials };
}

async function signInWithPassword(page, origin, customer) {
  await page.goto(origin);
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

test('a passkey is added, signs in without a password, and answers the two-step and a step-up', async (t) => {
  const { service, origin } = await passkeyService(t, { FINHUB_RECENT_AUTH_WINDOW: '2s' });
  const context = await contextFor(t, browser());
  const { page, credentials } = await pageWithAuthenticator(context);

  await signInWithPassword(page, origin, CUSTOMERS.ann);
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  // Ann's first second step needs no step-up.
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  const notice = page.locator('[data-credentials-notice]');
  await notice.waitFor();
  assert.equal(await notice.innerText(), 'Your passkey is added: you can sign in with it now.');
  await page.locator('[data-factors] li', { hasText: 'Passkey' }).waitFor();
  const made = await credentials();
  assert.equal(made.length, 1);
  assert.equal(made[0].isResidentCredential, true, 'a discoverable credential');
  assert.deepEqual(await accessibilityProblems(page), [], 'the account page with a passkey');

  // Recovery codes after the window: the step-up asks the passkey, and the codes follow.
  await sleep(2_200);
  await page.getByRole('button', { name: 'Make new recovery codes' }).click();
  await page.locator('[data-recovery-list] li').first().waitFor();
  assert.equal(await page.locator('[data-step-up]').isHidden(), true, 'no box for a passkey');
  await page.getByRole('button', { name: 'I have saved them' }).click();

  // Signed out, the passkey alone signs her in.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();

  // With the password, the two-step asks for the passkey.
  await page.getByRole('button', { name: 'Log out' }).click();
  await signInWithPassword(page, origin, CUSTOMERS.ann);
  await page.getByRole('button', { name: 'Use your passkey' }).waitFor();
  assert.equal(await page.getByLabel('6-digit code').isHidden(), true);
  assert.deepEqual(await accessibilityProblems(page), [], 'the two-step page for a passkey');
  await page.getByRole('button', { name: 'Use your passkey' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assertNoProblems(context);
});

test('a passkey the service does not know is refused in words', async (t) => {
  const { origin } = await passkeyService(t);
  const context = await contextFor(t, browser());
  const { page } = await pageWithAuthenticator(context);
  await page.goto(origin);
  // The virtual authenticator holds no credential for FinHub: the browser ends the request.
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  const error = page.locator('[data-error]');
  await error.waitFor();
  assert.match(await error.innerText(), /passkey was not used/);
  assertNoProblems(context);
});

test('where every customer needs a second step, a passkey is one to enrol, and renamed', async (t) => {
  const { origin } = await passkeyService(t, {
    FINHUB_REQUIRE_2FA: 'true',
    FINHUB_AUDIT_KEY: 'the-audit-key-of-the-web-tests-of-passkeys',
  });
  const context = await contextFor(t, browser());
  const { page, credentials } = await pageWithAuthenticator(context);
  await signInWithPassword(page, origin, CUSTOMERS.ann);
  await page.getByRole('heading', { name: 'Add a second step' }).waitFor();
  assert.deepEqual(await accessibilityProblems(page), [], 'the enrolment page with passkeys');
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assert.equal((await credentials()).length, 1);
  // Named as she knows the device.
  await page.getByRole('button', { name: 'Rename: Passkey' }).click();
  await page.getByLabel('New name for Passkey').fill('  Work laptop ');
  assert.deepEqual(await accessibilityProblems(page), [], 'renaming a factor');
  await page.getByRole('button', { name: 'Save the name' }).click();
  const notice = page.locator('[data-credentials-notice]');
  await notice.waitFor();
  assert.equal(await notice.innerText(), 'Renamed to Work laptop.');
  await page.locator('[data-factors] li .title', { hasText: 'Work laptop' }).waitFor();
  // It is her second step from now on, and signs her in alone.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  await page.getByRole('heading', { name: 'Hello, Ann' }).waitFor();
  assertNoProblems(context);
});
