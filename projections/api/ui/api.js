// The API key lives in sessionStorage (this tab only) and travels in the Authorization header;
// it is never put in a URL, so it is in no history, log or Referer.

const KEY = 'agentlog.apiKey';
let config = { command_api_url: null };

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export async function loadConfig() {
  const r = await fetch('/ui/config.json', { cache: 'no-store' });
  if (r.ok) config = await r.json();
  return config;
}

export function commandApiUrl() {
  return config.command_api_url;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  const key = apiKey();
  return { Accept: 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}), ...extra };
}

async function answer(r) {
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

export function query(path, params = {}, init = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, v);
  return fetch(url, { ...init, headers: headers(init.headers) }).then(answer);
}

export function command(path, body) {
  const base = commandApiUrl();
  if (!base) return Promise.reject(new Error('the query API names no command API (AGENTLOG_QUERIES_UI_COMMAND_API_URL)'));
  return fetch(new URL(path, base), {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  }).then(answer);
}

export const enc = encodeURIComponent;
