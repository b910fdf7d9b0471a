// The device a login is made from: a random id created once and kept in localStorage (it
// identifies this browser, not the customer, and is kept across logouts), with coarse traits
// that change rarely, and a name a person recognises in their list of devices.

import { DEVICE_ID } from './storage.js';

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function deviceId() {
  let id = localStorage.getItem(DEVICE_ID);
  if (!id || !/^[0-9a-f]{32}$/.test(id)) {
    id = randomId();
    localStorage.setItem(DEVICE_ID, id);
  }
  return id;
}

function platform() {
  return navigator.userAgentData?.platform || navigator.platform || 'unknown';
}

// Coarse on purpose: the exact resolution changes with a monitor or zoom.
function screenClass() {
  const width = Math.max(screen.width, screen.height);
  if (width < 800) return 'phone';
  if (width < 1400) return 'tablet-or-laptop';
  return 'desktop';
}

function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'unknown';
}

function browserName(ua) {
  if (/Edg\//.test(ua)) return 'Edge';
  if (/Firefox\//.test(ua)) return 'Firefox';
  if (/Chrome\/|Chromium\//.test(ua)) return 'Chrome';
  if (/Safari\//.test(ua)) return 'Safari';
  return 'Browser';
}

function systemName(ua) {
  if (/Android/.test(ua)) return 'Android';
  if (/iPhone|iPad|iPod/.test(ua)) return 'iOS';
  if (/Windows/.test(ua)) return 'Windows';
  if (/Mac OS X|Macintosh/.test(ua)) return 'macOS';
  if (/CrOS/.test(ua)) return 'ChromeOS';
  if (/Linux/.test(ua)) return 'Linux';
  return 'an unknown system';
}

// `device` as the login request carries it.
export function currentDevice() {
  const traits = [platform(), navigator.language, screenClass(), timeZone()];
  const ua = navigator.userAgent;
  return {
    fingerprint: [deviceId(), ...traits].join('|').slice(0, 512),
    name: `${browserName(ua)} on ${systemName(ua)}`,
  };
}
