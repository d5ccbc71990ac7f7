// The generator control page: talks to sluice-gen directly (it answers with CORS headers).
// Its URL comes from the supervisor's /api/config (or ?gen=URL).

import './styles.css';
import { Connection, HttpError, request, every, generatorUrl, type AppConfig } from './lib/api';
import { adoptFromLocation, authHeader } from './lib/auth';
import { formatClock, formatDuration, formatInt, formatRate } from './lib/format';
import {
  EVENT_TYPES,
  configPatch,
  formFromConfig,
  genErrorMessage,
  mixFromForm,
  mixSum,
  parseEmitCount,
  validateForm,
  type FormValues,
  type GenConfig,
  type GenStats,
} from './lib/genconfig';
import { RateTracker } from './lib/health';
import { connectionView } from './ui/conn';
import { $, announce, h, setText } from './ui/dom';

let base = generatorUrl(null, location.search);
const conn = new Connection(connectionView('sluice-gen', () => base));
let current: GenConfig | null = null;
let running: boolean | null = null;
const genRate = new RateTracker(5000);

const form = $('#cfg-form') as HTMLFormElement;
const FIELDS = ['rate', 'invalid_pct', 'duplicate_pct', 'late_pct', 'late_by', 'users', 'products', 'seed'];

function genFetch<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
  return request<T>(`${base}${path}`, { method, body, timeoutMs: 8000 });
}

function errMsg(e: unknown): string {
  if (e instanceof HttpError) return genErrorMessage(e.body, e.status);
  return (e as Error).message;
}

// ---- settings form -----------------------------------------------------------------------

function buildMixFields(): void {
  const box = $('#mix-fields');
  for (const t of EVENT_TYPES) {
    const id = `f-mix-${t.id}`;
    box.append(
      h(
        'div',
        { class: 'field' },
        h('label', { for: id }, t.label),
        h('input', { id, name: `mix.${t.id}`, type: 'text', inputmode: 'decimal', 'aria-describedby': `e-mix-${t.id}` }),
        h('p', { class: 'field-error', id: `e-mix-${t.id}` }),
      ),
    );
  }
}

function readForm(): FormValues {
  const v: FormValues = {};
  for (const el of form.querySelectorAll<HTMLInputElement>('input[name]')) v[el.name] = el.value;
  return v;
}

function fillForm(c: GenConfig): void {
  const v = formFromConfig(c);
  for (const [k, s] of Object.entries(v)) {
    const el = form.querySelector<HTMLInputElement>(`input[name="${k}"]`);
    if (el) el.value = s;
  }
  ($('#f-seed') as HTMLInputElement).value = '';
  check();
}

/** Validates, shows messages next to the fields, enables Apply; returns whether valid. */
function check(): boolean {
  const v = readForm();
  const errors = validateForm(v);
  const keys = [...FIELDS, 'mix', 'shares', ...EVENT_TYPES.map((t) => `mix.${t.id}`)];
  for (const k of keys) {
    const el = document.getElementById(`e-${k.replace('.', '-')}`);
    if (el) setText(el, errors[k] ?? '');
    const input = form.querySelector<HTMLInputElement>(`input[name="${k}"]`);
    if (input) input.setAttribute('aria-invalid', String(Boolean(errors[k])));
  }
  const mix = mixFromForm(v);
  const sum = mixSum(mix);
  const sumEl = $('#mix-sum');
  sumEl.dataset.ok = String(Math.abs(sum - 100) < 1e-6);
  setText(sumEl, Number.isFinite(sum) ? `Total: ${sum} %` : 'Total: —');
  const ok = Object.keys(errors).length === 0;
  const dirty = ok && Object.keys(configPatch(v, current)).length > 0;
  ($('#apply') as HTMLButtonElement).disabled = !ok || !dirty || !current;
  return ok;
}

async function apply(ev: Event): Promise<void> {
  ev.preventDefault();
  const msg = $('#cfg-msg');
  if (!check()) {
    announce(msg, 'Please correct the highlighted fields.', 'error');
    return;
  }
  const patch = configPatch(readForm(), current);
  const btn = $('#apply') as HTMLButtonElement;
  btn.disabled = true;
  try {
    current = await genFetch<GenConfig>('/gen/config', 'PUT', patch);
    conn.ok();
    fillForm(current);
    announce(msg, `Settings applied at ${formatClock(Date.now())}.`);
  } catch (e) {
    conn.fail(e);
    announce(msg, `Not applied: ${errMsg(e)}`, 'error');
    check();
  }
}

// ---- start / stop, emit ------------------------------------------------------------------

function renderRunning(r: boolean | null): void {
  running = r;
  const st = $('#gen-state');
  st.dataset.running = r === null ? '' : String(r);
  setText(st, r === null ? '—' : r ? 'Running' : 'Stopped');
  const b = $('#toggle') as HTMLButtonElement;
  b.disabled = r === null;
  setText(b, r ? 'Stop generator' : 'Start generator');
  b.dataset.running = String(r);
}

async function toggle(): Promise<void> {
  if (running === null) return;
  const b = $('#toggle') as HTMLButtonElement;
  b.disabled = true;
  try {
    current = await genFetch<GenConfig>('/gen/config', 'PUT', { running: !running });
    conn.ok();
    renderRunning(current.running);
  } catch (e) {
    conn.fail(e);
    announce($('#cfg-msg'), `Could not ${running ? 'stop' : 'start'} the generator: ${errMsg(e)}`, 'error');
    b.disabled = false;
  }
}

async function emit(ev: Event): Promise<void> {
  ev.preventDefault();
  const msg = $('#emit-msg');
  const input = $('#emit-count') as HTMLInputElement;
  const { count, error } = parseEmitCount(input.value);
  input.setAttribute('aria-invalid', String(Boolean(error)));
  if (error) {
    announce(msg, error, 'error');
    return;
  }
  const b = $('#emit') as HTMLButtonElement;
  b.disabled = true;
  try {
    const r = await genFetch<{ emitted: number; queued: number; dropped: number }>('/gen/emit', 'POST', { count });
    conn.ok();
    const dropped = r.dropped ? ` (${formatInt(r.dropped)} dropped: the buffer is full)` : '';
    announce(msg, `Emitted ${formatInt(r.emitted)} events${dropped}.`, r.dropped ? 'error' : 'ok');
    await pollStats();
  } catch (e) {
    conn.fail(e);
    announce(msg, `Not emitted: ${errMsg(e)}`, 'error');
  } finally {
    b.disabled = false;
  }
}

// ---- live counters -----------------------------------------------------------------------

function statRow(list: HTMLElement, id: string, label: string): void {
  list.append(h('div', { class: 'stat' }, h('dt', {}, label), h('dd', { id: `stat-${id}`, 'data-value': '' }, '—')));
}

function buildStats(): void {
  const l = $('#stats-list');
  statRow(l, 'rate', 'Actual rate (events/s, last 5 s)');
  statRow(l, 'generated', 'Generated');
  statRow(l, 'valid', 'Valid');
  statRow(l, 'invalid', 'Invalid');
  statRow(l, 'duplicates', 'Duplicates');
  statRow(l, 'late', 'Late');
  statRow(l, 'polled', 'Taken by sluice');
  statRow(l, 'buffered', 'Waiting in buffer');
  statRow(l, 'dropped', 'Dropped (buffer full)');
  statRow(l, 'uptime', 'Uptime');
  const t = $('#stats-types');
  for (const x of EVENT_TYPES) statRow(t, `type-${x.id}`, x.label);
}

function setStat(id: string, v: number | null, text: string): void {
  const el = $(`#stat-${id}`);
  el.dataset.value = v === null ? '' : String(v);
  setText(el, text);
}

async function pollStats(): Promise<void> {
  try {
    const s = await genFetch<GenStats>('/gen/stats');
    conn.ok();
    $('#gen-empty').hidden = true;
    const now = Date.now();
    genRate.push(now, s.generated);
    const r = genRate.rate();
    setStat('rate', r, formatRate(r));
    for (const k of ['generated', 'valid', 'invalid', 'duplicates', 'late', 'polled', 'dropped'] as const) setStat(k, s[k], formatInt(s[k]));
    setStat('buffered', s.buffered, `${formatInt(s.buffered)} of ${formatInt(s.buffer_capacity)}`);
    setStat('uptime', s.uptime_s, formatDuration(s.uptime_s));
    for (const x of EVENT_TYPES) setStat(`type-${x.id}`, s.by_type?.[x.id] ?? null, formatInt(s.by_type?.[x.id] ?? null));
    setText($('#stats-updated'), `Updated ${formatClock(now)}`);
    if (s.running !== running) renderRunning(s.running);
    if (!current) await loadConfig();
  } catch (e) {
    conn.fail(e);
    if (conn.state === 'disconnected') setText($('#gen-empty'), `The generator at ${base} does not answer.`), ($('#gen-empty').hidden = false);
  }
}

async function loadConfig(): Promise<void> {
  current = await genFetch<GenConfig>('/gen/config');
  fillForm(current);
  renderRunning(current.running);
}

// ---- start -------------------------------------------------------------------------------

async function main(): Promise<void> {
  buildMixFields();
  buildStats();
  form.addEventListener('input', () => check());
  form.addEventListener('submit', (ev) => void apply(ev));
  $('#revert').addEventListener('click', () => current && fillForm(current));
  $('#toggle').addEventListener('click', () => void toggle());
  $('#emit-form').addEventListener('submit', (ev) => void emit(ev));
  try {
    // a ?token= link to this page is kept for the dashboard (same tab) and stripped from the URL;
    // it goes to sluice only, never to sluice-gen
    const cfg = await request<AppConfig>('/api/config', { timeoutMs: 3000, headers: authHeader(adoptFromLocation()) });
    base = generatorUrl(cfg, location.search);
    if (cfg.version) setText($('#version'), `sluice ${cfg.version}`);
  } catch {
    /* no supervisor (e.g. the page is opened from the dev server alone): default or ?gen= */
  }
  setText($('#gen-url'), base);
  every(1000, pollStats);
}

void main();
