// A virtualised timeline: only the rows in view (plus a margin) exist in the DOM, so a session of
// 10,000 events scrolls and filters as fast as one of ten. Keyboard: ArrowUp/ArrowDown (or k/j),
// PageUp/PageDown, Home/End move the selection; the selected version is shown beside it.

import { h } from './dom.js';

export const ROW_HEIGHT = 30;
const OVERSCAN = 8;

export class Timeline {
  constructor(onSelect) {
    this.items = [];
    this.selected = -1;
    this.onSelect = onSelect;
    this.spacer = h('div', { class: 'tl-spacer' });
    this.el = h('div', { class: 'timeline', id: 'timeline', role: 'listbox', tabindex: '0', 'aria-label': 'timeline (arrow keys move)' }, this.spacer);
    this.el.addEventListener('scroll', () => this.schedule());
    this.el.addEventListener('keydown', (e) => this.key(e));
    this.el.addEventListener('click', (e) => {
      const row = e.target.closest('.tl-row');
      if (row) this.select(Number(row.dataset.index), true, false);
    });
    new ResizeObserver(() => this.schedule()).observe(this.el);
    this.frame = 0;
  }

  setItems(items) {
    const version = this.selected >= 0 ? this.items[this.selected]?.version : null;
    this.items = items;
    this.selected = version == null ? -1 : items.findIndex((i) => i.version === version);
    this.render();
  }

  indexOfVersion(version) {
    // items are in version order: a binary search
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.items[mid].version;
      if (v === version) return mid;
      if (v < version) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  showVersion(version) {
    const i = this.indexOfVersion(version);
    this.selected = i;
    if (i >= 0) this.scrollTo(i);
    this.render();
  }

  select(index, notify, viaKey) {
    if (!this.items.length) return;
    this.selected = Math.max(0, Math.min(this.items.length - 1, index));
    this.scrollTo(this.selected);
    this.render();
    if (notify) this.onSelect(this.items[this.selected], viaKey);
  }

  scrollTo(i) {
    const top = i * ROW_HEIGHT;
    if (top < this.el.scrollTop) this.el.scrollTop = top;
    else if (top + ROW_HEIGHT > this.el.scrollTop + this.el.clientHeight) this.el.scrollTop = top + ROW_HEIGHT - this.el.clientHeight;
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.el.clientHeight / ROW_HEIGHT) - 1);
    const moves = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, PageDown: page, PageUp: -page };
    let target = null;
    if (e.key in moves) target = (this.selected < 0 ? 0 : this.selected + moves[e.key]);
    else if (e.key === 'Home') target = 0;
    else if (e.key === 'End') target = this.items.length - 1;
    if (target === null) return;
    e.preventDefault();
    this.select(target, true, true);
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    const n = this.items.length;
    this.spacer.style.height = `${n * ROW_HEIGHT}px`;
    const height = this.el.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.el.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(n, Math.ceil((this.el.scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i++) rows.push(this.row(this.items[i], i));
    this.spacer.replaceChildren(...rows);
    this.el.setAttribute('aria-activedescendant', this.selected >= 0 ? `tl-${this.items[this.selected]?.version}` : '');
  }

  row(item, i) {
    const kind = kindOf(item.type);
    const row = h('div', {
      class: `tl-row kind-${kind}${i === this.selected ? ' selected' : ''}`,
      id: `tl-${item.version}`,
      role: 'option',
      'aria-selected': i === this.selected ? 'true' : 'false',
      dataset: { index: i, version: item.version, type: item.type },
    },
    h('span', { class: 'tl-version' }, `v${item.version}`),
    h('span', { class: 'tl-type' }, item.type),
    h('span', { class: 'tl-agent' }, item.agent || ''),
    h('span', { class: 'tl-summary', title: item.summary }, item.summary));
    row.style.top = `${i * ROW_HEIGHT}px`;
    return row;
  }
}

export function kindOf(type) {
  if (/^Message|Conversation/.test(type)) return 'message';
  if (/^ToolCall/.test(type)) return 'tool';
  if (/^Approval/.test(type)) return 'approval';
  if (/Checkpoint|^Graph/.test(type)) return 'checkpoint';
  if (/Error|Failed/.test(type)) return 'error';
  if (/^ModelCall|Context/.test(type)) return 'model';
  return 'session';
}
