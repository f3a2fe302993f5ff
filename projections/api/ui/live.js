// Server-sent events read with fetch (EventSource cannot send the Authorization header, and the
// key must not go in the URL). Reconnects with a growing delay and resumes after the last version
// it delivered, so nothing is missed and nothing is shown twice.

import { apiKey, enc } from './api.js';

export function follow(sessionId, afterVersion, onEntry, onStatus = () => {}) {
  let after = afterVersion;
  let stopped = false;
  let controller = null;
  let delay = 500;

  async function once() {
    controller = new AbortController();
    const url = `/v1/sessions/${enc(sessionId)}/events?after_version=${after}`;
    const r = await fetch(url, {
      headers: { Accept: 'text/event-stream', Authorization: `Bearer ${apiKey()}` },
      signal: controller.signal,
      cache: 'no-store',
    });
    if (!r.ok || !r.body) throw new Error(`live stream answered ${r.status}`);
    onStatus('live');
    delay = 500;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        const entry = JSON.parse(data);
        if (entry.version > after) {
          after = entry.version;
          onEntry(entry);
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (e) {
        if (stopped) return;
        onStatus('reconnecting');
      }
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();

  return {
    stop() {
      stopped = true;
      if (controller) controller.abort();
    },
    get after() {
      return after;
    },
  };
}
