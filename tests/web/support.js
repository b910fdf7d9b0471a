// What every browser test needs: a real finhub-auth on a fresh SQLite database with known
// customers, headless Chromium, and a watch on each page for script errors and Content-Security-
// Policy violations (either fails the test).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR ?? 'target');
export const BINARY = process.env.FINHUB_AUTH_BIN ?? path.join(TARGET, 'debug', 'finhub-auth');
const SCREENSHOTS = path.resolve(ROOT, process.env.FINHUB_SCREENSHOTS_DIR ?? path.join(TARGET, 'web-screenshots'));

export const PASSWORD = 'web-test-password-2026';

export const CUSTOMERS = {
  // No 2FA, identity verified.
  ann: { username: 'ann@web.test', email: 'ann@web.test', phone: '+447700900111', firstName: 'Ann', lastName: 'Plain', kycStatus: 'VERIFIED' },
  // SMS 2FA, identity being checked.
  ben: { username: 'ben@web.test', email: 'ben@web.test', phone: '+447700900123', firstName: 'Ben', lastName: 'Second', kycStatus: 'PENDING', twoFactor: { enabled: true, method: 'SMS' } },
  // Names that would run script if a page ever inserted them as HTML.
  mallory: {
    username: 'mallory@web.test', email: 'mallory@web.test', kycStatus: 'REJECTED',
    firstName: '<script>window.__injected = 1</script>',
    lastName: '<img src=x onerror="window.__injected = 2">',
  },
};

// Settings for every test service; rate limits are off unless a test sets them.
const DEFAULTS = {
  FINHUB_LOG_FORMAT: 'json',
  RUST_LOG: 'info',
  FINHUB_RATE_LIMIT_IP: 'off',
  FINHUB_RATE_LIMIT_LOGIN_IP: 'off',
  FINHUB_RATE_LIMIT_LOGIN_ACCOUNT: 'off',
};

// Services still running when the process ends (a test that failed half-way) are killed.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class Service {
  constructor(child, dir, url) {
    this.child = child;
    this.dir = dir;
    this.url = url;
  }

  // `serve` (or `demo`) on a fresh database in a directory of its own, on a free port.
  static async start({ env = {}, demo = false } = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), 'finhub-web-'));
    const fullEnv = {
      ...process.env,
      ...DEFAULTS,
      FINHUB_DATABASE_URL: `sqlite://${dir}/auth.db`,
      FINHUB_OUTBOX_PATH: path.join(dir, 'outbox.jsonl'),
      FINHUB_LISTEN: '127.0.0.1:0',
      ...env,
    };
    if (!demo) {
      const file = path.join(dir, 'customers.jsonl');
      const lines = Object.values(CUSTOMERS).map((c) => JSON.stringify({ ...c, password: PASSWORD }));
      writeFileSync(file, `${lines.join('\n')}\n`);
      execFileSync(BINARY, ['customers', 'import', file], { env: fullEnv, stdio: 'ignore' });
    }
    const child = spawn(BINARY, [demo ? 'demo' : 'serve'], { cwd: dir, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const url = await listeningAddress(child, demo);
    // A service left running must not keep the test process alive.
    child.unref();
    child.stdout.unref();
    child.stderr.unref();
    return new Service(child, dir, url);
  }

  // One service for the whole test file: call at the top level; the returned function gives
  // the service inside tests.
  static shared(options) {
    let service;
    before(async () => {
      service = await Service.start(options);
    });
    after(() => service?.stop());
    return () => service;
  }

  // Started for test `t`, stopped when it ends, pass or fail.
  static async for(t, options) {
    const service = await Service.start(options);
    t.after(() => service.stop());
    return service;
  }

  // Every message the outbox notifier has written, oldest first.
  messages() {
    try {
      return readFileSync(path.join(this.dir, 'outbox.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map(JSON.parse);
    } catch {
      return [];
    }
  }

  // The first code written after the outbox held `after` messages (security notices have none).
  async nextCode(after = 0) {
    for (let i = 0; i < 100; i += 1) {
      const code = this.messages().slice(after).find((m) => typeof m.code === 'string');
      if (code) return code.code;
      await sleep(100);
    }
    throw new Error('no code reached the outbox');
  }

  async api(method, apiPath, { token, body } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(`${this.url}/api/v1${apiPath}`, { method, headers, body: body && JSON.stringify(body) });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGTERM');
      await exited;
    }
    running.delete(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// The address from `serve`'s "listening" log line, or `demo`'s banner.
async function listeningAddress(child, demo) {
  const lines = createInterface({ input: demo ? child.stdout : child.stderr });
  const other = demo ? child.stderr : child.stdout;
  other.resume();
  const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    for await (const line of lines) {
      const match = demo
        ? line.match(/demo on (http:\/\/[0-9.:]+)/)
        : line.includes('listening') && line.match(/"address":"([0-9.:]+)"/);
      if (match) {
        // Keep draining, so a full pipe never stalls the service.
        lines.on('line', () => {});
        return demo ? match[1] : `http://${match[1]}`;
      }
    }
  } finally {
    clearTimeout(timeout);
  }
  throw new Error('finhub-auth exited before listening');
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// One headless Chromium for the whole test file: call at the top level; the returned function
// gives the browser inside tests.
export function useBrowser() {
  let browser;
  before(async () => {
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  });
  after(() => browser?.close());
  return () => browser;
}

// A fresh browser profile for test `t`, closed when it ends; `problems` collects script errors
// and CSP violations of its pages.
export async function contextFor(t, browser, options = {}) {
  const context = await newContext(browser, options);
  t.after(() => context.close());
  return context;
}

async function newContext(browser, options) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, ...options });
  context.problems = [];
  await context.exposeBinding('__reportViolation', (_source, text) => context.problems.push(`CSP: ${text}`));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  context.on('page', (page) => watch(context, page));
  return context;
}

function watch(context, page) {
  page.on('pageerror', (error) => context.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // The browser logs every 4xx/5xx answer; the pages handle those, so they are expected.
    if (message.type() !== 'error' || /Failed to load resource: the server responded with a status of/.test(message.text())) return;
    context.problems.push(`console error: ${message.text()}`);
  });
}

export function assertNoProblems(context) {
  assert.deepEqual(context.problems, [], 'no script errors or CSP violations');
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

export async function signIn(page, service, customer) {
  await page.goto(service.url);
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

// A new tab of `context` in which `customer` (without 2FA) signs in and sees their account.
export async function signedInTab(context, service, customer) {
  const page = await context.newPage();
  await signIn(page, service, customer);
  await page.getByRole('heading', { name: `Hello, ${customer.firstName}` }).waitFor();
  return page;
}

// A new tab of `context` opened on the service, already signed in through another tab.
export async function anotherTab(context, service, customer) {
  const page = await context.newPage();
  await page.goto(service.url);
  await page.getByRole('heading', { name: `Hello, ${customer.firstName}` }).waitFor();
  return page;
}

export async function storage(page) {
  return page.evaluate(() => Object.fromEntries(Object.entries(localStorage)));
}

// Puts `text` on the code field as a paste from the clipboard would.
export async function pasteInto(locator, text) {
  await locator.evaluate((element, pasted) => {
    const data = new DataTransfer();
    data.setData('text/plain', pasted);
    element.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, text);
}

export async function assertText(locator, text) {
  const shown = await locator.innerText();
  assert.ok(shown.includes(text), `"${text}" in:\n${shown}`);
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// Runs axe-core in the page; returns the serious and critical violations.
export async function accessibilityProblems(page) {
  await page.evaluate(AXE);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

// RFC 6238's code for a base32 `secret` at `at` (ms), computed here apart from the service.
export function totp(secret, at) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/[\s=]/g, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => Number.parseInt(b, 2)));
  const step = Buffer.alloc(8);
  step.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const digest = createHmac('sha1', key).update(step).digest();
  const offset = digest[19] & 0x0f;
  return String((digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
