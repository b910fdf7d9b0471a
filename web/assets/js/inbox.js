// The demo inbox: shows the outbox's latest messages, refreshing every two seconds.

import { formatDateTime } from './format.js';

const list = document.querySelector('[data-messages]');
const empty = document.querySelector('[data-empty]');
const error = document.querySelector('[data-error]');

function item(message) {
  const li = document.createElement('li');
  const meta = document.createElement('p');
  meta.className = 'hint';
  meta.textContent = `${formatDateTime(message.at)} · ${message.channel === 'SMS' ? 'Text message' : 'E-mail'} to ${message.to}`;
  const code = document.createElement('p');
  code.className = 'code';
  code.textContent = message.code ?? '';
  const text = document.createElement('p');
  text.textContent = message.text;
  li.append(meta, code, text);
  if (message.lockdownUrl) {
    // The e-mail's "this wasn't me" link, as the customer would follow it.
    const link = document.createElement('a');
    link.href = message.lockdownUrl;
    link.textContent = 'This wasn’t me: lock my account';
    const p = document.createElement('p');
    p.append(link);
    li.append(p);
  }
  return li;
}

async function refresh() {
  try {
    const response = await fetch('/demo/messages', { cache: 'no-store' });
    if (!response.ok) throw new Error(String(response.status));
    const { messages } = await response.json();
    list.replaceChildren(...messages.map(item));
    empty.hidden = messages.length > 0;
    error.hidden = true;
  } catch {
    error.textContent = 'The demo inbox cannot reach finhub-auth. Is the demo still running?';
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, 2_000);
