// The explorer's entry point: asks for an API key (kept in this tab's sessionStorage), then routes
// on the location hash: #/ lists sessions, #/s/<id> opens one (#/s/<id>/<version> at a version).

import { ApiError, apiKey, loadConfig, query, setApiKey } from './api.js';
import { clear, h } from './dom.js';
import { renderSessions } from './sessions.js';
import { renderSession } from './session.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const forget = document.getElementById('forget');
let me = null;
let dispose = () => {};

function keyForm(message) {
  dispose();
  dispose = () => {};
  const input = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', placeholder: 'al_…', required: true, 'aria-label': 'API key' });
  const form = h(
    'form',
    { id: 'key-form', class: 'key-form' },
    h('h1', {}, 'Open the explorer'),
    h('p', {}, 'Paste an API key. It stays in this tab only (sessionStorage) and is sent in the Authorization header.'),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
    input,
    h('button', { type: 'submit', id: 'key-submit' }, 'Open'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    start();
  });
  clear(main).append(form);
  input.focus();
}

async function start() {
  if (!apiKey()) return keyForm();
  try {
    me = await query('/ui/me');
  } catch (e) {
    setApiKey(null);
    return keyForm(e instanceof ApiError && e.status === 401 ? 'That key was not accepted.' : `Could not check the key: ${e.message}`);
  }
  who.textContent = `tenant ${me.tenant} · ${me.role}`;
  forget.hidden = false;
  route();
}

function route() {
  if (!me) return;
  dispose();
  dispose = () => {};
  const hash = location.hash.replace(/^#/, '') || '/';
  const match = hash.match(/^\/s\/([^/]+)(?:\/(\d+))?$/);
  if (match) {
    dispose = renderSession(main, decodeURIComponent(match[1]), match[2] ? Number(match[2]) : null, me);
  } else {
    dispose = renderSessions(main);
  }
}

forget.addEventListener('click', () => {
  setApiKey(null);
  me = null;
  who.textContent = '';
  forget.hidden = true;
  keyForm();
});
window.addEventListener('hashchange', route);
loadConfig().finally(start);
