// The sessions list: the query API's filters (status, workflow, agent, updated since), a search by
// id or title, and cursor paging ("More" asks for the next page with next_cursor).

import { query } from './api.js';
import { clear, h, when } from './dom.js';

const STATUSES = ['', 'open', 'completed', 'failed', 'cancelled'];
let remembered = {};

export function renderSessions(main) {
  let alive = true;
  const field = (name, attrs) => h('input', { name, id: `f-${name}`, value: remembered[name] || '', ...attrs });
  const status = h('select', { name: 'status', id: 'f-status' }, STATUSES.map((s) => h('option', { value: s, selected: remembered.status === s }, s || 'any status')));
  const inputs = {
    q: field('q', { type: 'search', placeholder: 'id or title', 'aria-label': 'search by id or title' }),
    workflow: field('workflow', { placeholder: 'workflow', 'aria-label': 'workflow' }),
    agent: field('agent', { placeholder: 'agent', 'aria-label': 'agent' }),
    updated_since: field('updated_since', { type: 'datetime-local', 'aria-label': 'updated since' }),
  };
  const form = h('form', { class: 'filters', id: 'session-filters' }, inputs.q, status, inputs.workflow, inputs.agent,
    h('label', {}, 'updated since ', inputs.updated_since), h('button', { type: 'submit' }, 'Apply'));
  const body = h('tbody');
  const table = h('table', { id: 'sessions-table', class: 'sessions' },
    h('thead', {}, h('tr', {}, ['session', 'title', 'status', 'workflow', 'agents', 'version', 'messages', 'tool calls', 'failures', 'errors', 'tokens', 'cost', 'updated'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const more = h('button', { type: 'button', id: 'sessions-more', hidden: true }, 'More');
  const note = h('p', { class: 'muted', id: 'sessions-note', role: 'status' });
  clear(main).append(h('section', { class: 'list' }, h('h1', {}, 'Sessions'), form, h('div', { class: 'table-wrap' }, table), note, more));

  let cursor = null;
  let shown = 0;

  function params() {
    const p = { status: status.value, limit: 50 };
    for (const [k, input] of Object.entries(inputs)) p[k] = input.value.trim();
    if (p.updated_since) p.updated_since = new Date(p.updated_since).toISOString();
    return p;
  }

  async function load(reset) {
    if (reset) {
      cursor = null;
      shown = 0;
      clear(body);
    }
    note.textContent = 'Loading…';
    try {
      const page = await query('/v1/sessions', { ...params(), cursor });
      if (!alive) return;
      for (const s of page.items) body.append(row(s));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      note.textContent = shown ? `${shown} session${shown === 1 ? '' : 's'}${cursor ? ' so far' : ''}` : 'No sessions match.';
    } catch (e) {
      note.textContent = `Could not list sessions: ${e.message}`;
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    remembered = { ...Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value])), status: status.value };
    load(true);
  });
  more.addEventListener('click', () => load(false));
  load(true);
  return () => {
    alive = false;
  };
}

function row(s) {
  const link = h('a', { href: `#/s/${encodeURIComponent(s.session_id)}` }, s.session_id);
  const c = s.counts || {};
  const u = s.usage;
  return h('tr', { dataset: { sessionId: s.session_id } },
    h('td', {}, link), h('td', {}, s.title || ''), h('td', {}, h('span', { class: `status status-${s.status}` }, s.status)),
    h('td', {}, s.workflow || ''), h('td', {}, (s.agents || []).join(', ')), h('td', { class: 'num' }, s.version),
    h('td', { class: 'num' }, c.messages ?? ''), h('td', { class: 'num' }, c.tool_calls ?? ''),
    h('td', { class: 'num' }, c.tool_failures ?? ''), h('td', { class: 'num' }, c.errors ?? ''),
    h('td', { class: 'num' }, u && u.model_calls ? u.input_tokens + u.output_tokens : ''),
    h('td', { class: 'num' }, u && u.model_calls ? `$${Number(u.cost_usd).toFixed(4)}` : ''), h('td', {}, when(s.updated_at)));
}
