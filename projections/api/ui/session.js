// One session: its head (status, counts, lineage), the timeline (filterable by type and agent),
// a version slider, and for the selected version: the event, the state with blame on each value,
// the changes from the previous version, the exact model request of a model call; "fork here"
// with a writer key; new events arrive live (live.js).

import { commandApiUrl, command, enc, query } from './api.js';
import { append, clear, h, json, text, when } from './dom.js';
import { follow } from './live.js';
import { Timeline, kindOf } from './timeline.js';

const PAGE = 200;

export function renderSession(main, sessionId, atVersion, me) {
  let alive = true;
  let live = null;
  let all = [];
  let selected = null;
  let ticket = 0;
  let last = 0;
  const base = `/v1/sessions/${enc(sessionId)}`;

  const head = h('div', { class: 'head', id: 'session-head' }, h('h1', {}, sessionId));
  const typeFilter = h('select', { id: 'filter-type', 'aria-label': 'filter by type' }, h('option', { value: '' }, 'all types'));
  const agentFilter = h('select', { id: 'filter-agent', 'aria-label': 'filter by agent' }, h('option', { value: '' }, 'all agents'));
  const slider = h('input', { type: 'range', id: 'version-slider', min: 1, max: 1, value: 1, 'aria-label': 'version' });
  const sliderLabel = h('output', { id: 'version-label', for: 'version-slider' }, '');
  const liveBadge = h('span', { id: 'live-status', class: 'badge', role: 'status' }, 'loading');
  const canFork = (me.role === 'writer' || me.role === 'admin') && commandApiUrl();
  const forkButton = canFork ? h('button', { type: 'button', id: 'fork-here', disabled: true }, 'Fork here') : null;
  const count = h('span', { id: 'timeline-count', class: 'muted' });
  const toolbar = h('div', { class: 'toolbar' }, typeFilter, agentFilter, count,
    h('label', { class: 'slider' }, 'version ', slider, sliderLabel), forkButton, liveBadge);
  const timeline = new Timeline((item, viaKey) => selectVersion(item.version, { now: !viaKey }));
  const detail = h('div', { class: 'detail', id: 'detail', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Select an event or a version.'));
  const message = h('p', { class: 'error', id: 'session-error', role: 'alert', hidden: true });
  clear(main).append(h('section', { class: 'session' }, h('p', {}, h('a', { href: '#/' }, '← sessions')), head, message, toolbar,
    h('div', { class: 'panes' }, timeline.el, detail)));

  function fail(e) {
    message.hidden = false;
    message.textContent = e.message;
  }

  // ---- head and lineage
  async function loadHead() {
    let s;
    try {
      s = await query(base);
    } catch (e) {
      if (e.status !== 404) throw e;
      // a session just created (a fork opened from this page) may not be projected yet: wait for
      // its first version a little; still nothing is a 404 as before
      s = await query(base, { min_version: 1, wait_ms: 3000 }).catch((again) => {
        throw again.status === 504 ? e : again;
      });
    }
    if (!alive) return;
    const c = s.counts || {};
    const facts = h('dl', { class: 'facts' },
      fact('status', h('span', { class: `status status-${s.status}`, id: 'session-status' }, s.status)),
      fact('version', h('span', { id: 'session-version' }, s.version)),
      fact('workflow', s.workflow || '—'), fact('agents', (s.agents || []).join(', ') || '—'),
      fact('messages', c.messages), fact('tool calls', `${c.tool_calls} (${c.tool_failures} failed)`), fact('errors', c.errors),
      fact('outcome', s.outcome || '—'), usageFacts(s), fact('updated', when(s.updated_at)));
    const lineage = h('div', { class: 'lineage', id: 'lineage' });
    if (s.forked_from) {
      append(lineage, ['forked from ', h('a', { href: `#/s/${enc(s.forked_from)}/${s.forked_from_version}`, id: 'forked-from' }, s.forked_from), ` at v${s.forked_from_version}`]);
    }
    clear(head).append(h('h1', {}, s.title || sessionId), h('p', { class: 'muted' }, sessionId), facts, lineage);
    query(`${base}/forks`, { limit: 50 }).then((forks) => {
      if (!alive || !forks.items.length) return;
      append(lineage, [h('span', {}, forks.items.length === 1 ? ' · fork: ' : ' · forks: '),
        forks.items.map((f, i) => [i ? ', ' : '', h('a', { href: `#/s/${enc(f.session_id)}`, class: 'fork-link' }, f.session_id)])]);
    }).catch(() => {});
    return s;
  }

  function usageFacts(s) {
    const u = s.usage;
    if (!u || !u.model_calls) return null;
    const parts = [fact('model calls', u.model_calls), fact('tokens', `${u.input_tokens} in, ${u.output_tokens} out`),
      fact('cost', `$${Number(u.cost_usd).toFixed(4)}${u.unpriced_calls ? ` (+${u.unpriced_calls} unpriced)` : ''}`)];
    if (s.budget) {
      const b = s.budget;
      const limit = [b.max_tokens != null ? `${b.max_tokens} tokens` : null, b.max_cost_usd != null ? `$${b.max_cost_usd}` : null].filter(Boolean).join(', ');
      parts.push(fact('budget', h('span', { class: b.exceeded ? 'error' : '' }, `${limit}${b.exceeded ? ` exceeded at v${b.exceeded_version}` : ''}`)));
    }
    return parts;
  }

  function fact(name, value) {
    return [h('dt', {}, name), h('dd', {}, value instanceof Node ? value : text(value))];
  }

  // ---- timeline
  function filtered() {
    const type = typeFilter.value;
    const agent = agentFilter.value;
    return type || agent ? all.filter((e) => (!type || e.type === type) && (!agent || e.agent === agent)) : all;
  }

  const known = { type: new Set(), agent: new Set() };
  function learn(entries) {
    for (const e of entries) {
      if (!known.type.has(e.type)) { known.type.add(e.type); typeFilter.append(h('option', { value: e.type }, e.type)); }
      if (e.agent && !known.agent.has(e.agent)) { known.agent.add(e.agent); agentFilter.append(h('option', { value: e.agent }, e.agent)); }
    }
  }

  function refresh() {
    const items = filtered();
    timeline.setItems(items);
    const events = (n) => `${n} event${n === 1 ? '' : 's'}`;
    count.textContent = items.length === all.length ? events(all.length) : `${items.length} of ${events(all.length)}`;
    slider.max = String(Math.max(1, last));
    if (selected !== null) timeline.showVersion(selected);
  }

  async function loadTimeline() {
    let cursor = null;
    let firstPage = true;
    do {
      const page = await query(`${base}/timeline`, { limit: PAGE, cursor });
      if (!alive) return;
      all.push(...page.items);
      learn(page.items);
      last = Math.max(last, page.version, all.length ? all[all.length - 1].version : 0);
      refresh();
      if (firstPage) {
        firstPage = false;
        requestAnimationFrame(() => requestAnimationFrame(() => performance.mark('timeline-first-paint')));
        const target = atVersion || null;
        if (target) selectVersion(target, { now: true });
      }
      cursor = page.next_cursor;
    } while (cursor);
    performance.mark('timeline-loaded');
    if (!atVersion && all.length) selectVersion(all[all.length - 1].version, { now: true });
    document.body.dataset.timelineLoaded = 'true';
  }

  function onLive(entry) {
    if (!alive) return;
    all.push(entry);
    learn([entry]);
    last = Math.max(last, entry.version);
    refresh();
    if (selected !== null) sliderLabel.textContent = `v${selected} of ${last}`;
    scheduleHead();
  }

  let headTimer = 0;
  function scheduleHead() {
    if (!headTimer) headTimer = setTimeout(() => { headTimer = 0; loadHead().catch(() => {}); }, 300);
  }

  // ---- one version
  // The selection moves at once; what it shows is asked for after a short pause (holding an arrow
  // key or dragging the slider asks once, for where it stops). state/blame/diff replay the log on
  // the server (a long session takes seconds), so each panel is shown as soon as its answer is in,
  // and the answers of a version the user has left are dropped (their requests aborted).
  let loadTimer = 0;
  let shown = null;
  let aborter = null;
  function selectVersion(version, { now = false } = {}) {
    version = Math.max(1, Math.min(last || version, version));
    selected = version;
    slider.value = String(version);
    sliderLabel.textContent = `v${version} of ${last}`;
    if (forkButton) { forkButton.disabled = false; forkButton.textContent = `Fork here (v${version})`; }
    timeline.showVersion(version);
    history.replaceState(null, '', `#/s/${enc(sessionId)}/${version}`);
    clearTimeout(loadTimer);
    if (shown === version) return;
    loadTimer = setTimeout(() => loadVersion(version), now ? 0 : 150);
  }

  function loadVersion(version) {
    shown = version;
    const mine = ++ticket;
    if (aborter) aborter.abort();
    aborter = new AbortController();
    const init = { signal: aborter.signal };
    const entry = all[timeline.indexOfVersion(version)] || all.find((e) => e.version === version);
    const slots = [0, 1, 2].map(() => h('div', { class: 'slot' }));
    // the timeline's line at once; the event's details, state, blame and diff as they come
    slots[0].append(eventPanel(version, entry, null), h('p', { class: 'muted' }, `Loading v${version}…`));
    clear(detail).append(...slots);
    const fill = (slot, make) => (value) => {
      if (mine === ticket && alive) clear(slots[slot]).append(make(value));
    };
    const failed = (e) => {
      if (mine === ticket && alive && e.name !== 'AbortError') {
        shown = null;
        clear(slots[0]).append(h('p', { class: 'error' }, `Could not load v${version}: ${e.message}`));
      }
    };
    const state = query(`${base}/state`, { at_version: version }, init);
    state.then(fill(0, (st) => eventPanel(version, entry, st))).catch(failed);
    Promise.all([state, query(`${base}/blame`, { at_version: version }, init)])
      .then(fill(1, ([st, blame]) => statePanel(version, st, blame))).catch(failed);
    (version > 1 ? query(`${base}/diff`, { from: version - 1, to: version }, init) : Promise.resolve(null))
      .then(fill(2, (diff) => diffPanel(version, diff))).catch(failed);
  }

  function eventPanel(version, entry, state) {
    const at = (w) => w && w.session_id === sessionId && w.version === version;
    const parts = [];
    state = state || {};
    for (const m of state.conversation || []) if (m.version === version && m.session_id === sessionId) parts.push(['message', m]);
    for (const c of state.tool_calls || []) if (at(c.requested) || at(c.finished)) parts.push(['tool call', c]);
    for (const a of state.approvals || []) if (at(a.requested) || at(a.decided)) parts.push(['approval', a]);
    const calls = (state.model_calls || []).filter((c) => c.version === version && c.session_id === sessionId);
    for (const c of calls) parts.push(['model call', c]);
    const section = h('section', { class: 'panel', id: 'event-panel' },
      h('h2', {}, `Event v${version}`),
      entry ? h('p', { class: `event-line kind-${kindOf(entry.type)}` }, h('strong', {}, entry.type), entry.agent ? ` · ${entry.agent}` : '', ` · ${when(entry.recorded_at)}`) : null,
      entry ? h('p', { class: 'summary', id: 'event-summary' }, entry.summary) : null);
    for (const [label, value] of parts) section.append(h('h3', {}, label), detailOf(label, value));
    for (const c of calls) {
      const out = h('div', { class: 'context' });
      const button = h('button', { type: 'button', class: 'show-context' }, 'Show the exact model request');
      button.addEventListener('click', () => {
        button.disabled = true;
        query(`${base}/context`, { call_id: c.call_id }).then((ctx) => clear(out).append(h('h3', {}, `request of ${c.call_id}`), json(ctx)))
          .catch((e) => { clear(out).append(h('p', { class: 'error' }, e.message)); button.disabled = false; });
      });
      section.append(button, out);
    }
    return section;
  }

  function detailOf(label, v) {
    if (label === 'message') return h('div', { class: `message role-${v.role}` }, h('p', { class: 'muted' }, `${v.role}${v.agent ? ` / ${v.agent}` : ''}`), h('p', { class: 'content' }, text(v.content)));
    if (label === 'tool call') {
      return h('dl', { class: 'facts' }, fact('tool', v.tool), fact('call', v.call_id), fact('agent', v.agent || '—'), fact('status', v.status),
        fact('latency', v.duration_ms == null ? '—' : `${v.duration_ms} ms`), fact('arguments', json(v.arguments)),
        'result' in v ? fact('result', json(v.result)) : null, 'error' in v ? fact('error', json(v.error)) : null);
    }
    if (label === 'approval') {
      return h('dl', { class: 'facts' }, fact('approval', v.approval_id), fact('action', v.action), fact('risk', v.risk), fact('requested by', v.requested_by),
        fact('decision', v.status), fact('reviewer', v.reviewer || '—'), fact('comment', v.comment || '—'), v.details ? fact('details', json(v.details)) : null);
    }
    if (label === 'model call') {
      const u = v.usage || {};
      return h('dl', { class: 'facts' }, fact('model', `${v.provider ? `${v.provider}/` : ''}${v.model}`), fact('agent', v.agent || '—'),
        fact('tokens', Object.entries(u).filter(([, n]) => n != null).map(([k, n]) => `${k} ${n}`).join(', ') || '—'),
        fact('latency', v.latency_ms == null ? '—' : `${v.latency_ms} ms`), fact('messages', v.messages), fact('finish', v.finish_reason || v.error || '—'));
    }
    return json(v);
  }

  function statePanel(version, state, blame) {
    const rows = (blame.entries || []).map((b) => h('tr', { dataset: { path: b.path } },
      h('td', { class: 'path' }, b.path), h('td', { class: 'value' }, text(b.value)),
      h('td', { class: 'origin' }, h('a', { href: `#/s/${enc(b.session_id)}/${b.version}`, class: 'blame-link', dataset: { version: b.version, session: b.session_id } },
        `v${b.version}${b.session_id !== sessionId ? ` of ${b.session_id}` : ''}`), ` ${b.type}${b.agent ? ` by ${b.agent}` : ''}`)));
    const table = h('table', { class: 'blame', id: 'blame-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'path'), h('th', {}, 'value'), h('th', {}, 'set at'))), h('tbody', {}, rows));
    table.addEventListener('click', (e) => {
      const a = e.target.closest('a.blame-link');
      if (a && a.dataset.session === sessionId) { e.preventDefault(); selectVersion(Number(a.dataset.version), { now: true }); }
    });
    return h('section', { class: 'panel', id: 'state-panel' },
      h('h2', {}, `State at v${version}`, ' ', h('span', { class: `status status-${state.status}`, id: 'state-status' }, state.status)),
      rows.length ? table : h('p', { class: 'muted' }, 'No state sections yet.'),
      h('details', {}, h('summary', {}, 'the whole state as JSON'), json(state.state)));
  }

  function diffPanel(version, diff) {
    const section = h('section', { class: 'panel', id: 'diff-panel' }, h('h2', {}, version > 1 ? `Changes from v${version - 1}` : 'Changes'));
    if (!diff) return append(section, [h('p', { class: 'muted' }, 'The first version.')]);
    const s = diff.state;
    const items = [
      ...s.added.map((c) => h('li', { class: 'added' }, `+ ${c.path} = ${text(c.value)}`)),
      ...s.removed.map((c) => h('li', { class: 'removed' }, `- ${c.path} (was ${text(c.value)})`)),
      ...s.changed.map((c) => h('li', { class: 'changed' }, `~ ${c.path}: ${text(c.from)} → ${text(c.to)}`)),
    ];
    return append(section, [items.length ? h('ul', { class: 'diff', id: 'diff-list' }, items) : h('p', { class: 'muted' }, 'No state change.')]);
  }

  // ---- controls
  typeFilter.addEventListener('change', refresh);
  agentFilter.addEventListener('change', refresh);
  slider.addEventListener('input', () => { sliderLabel.textContent = `v${slider.value} of ${last}`; });
  slider.addEventListener('change', () => selectVersion(Number(slider.value), { now: true }));
  if (forkButton) {
    forkButton.addEventListener('click', async () => {
      forkButton.disabled = true;
      try {
        const fork = await command(`${base}/fork`, { at_version: selected });
        location.hash = `#/s/${enc(fork.session_id)}`;
      } catch (e) {
        fail(new Error(`Fork failed: ${e.message}`));
        forkButton.disabled = false;
      }
    });
  }

  (async () => {
    try {
      await loadHead();
      await loadTimeline();
      if (!alive) return;
      live = follow(sessionId, last, onLive, (status) => { liveBadge.textContent = status; liveBadge.dataset.state = status; });
    } catch (e) {
      if (alive) fail(e.status === 404 ? new Error(`No session ${sessionId} (for this key's tenant).`) : e);
      liveBadge.textContent = 'offline';
    }
  })();

  return () => {
    alive = false;
    if (live) live.stop();
  };
}
