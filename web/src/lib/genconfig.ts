// sluice-gen's configuration (GET|PUT /gen/config) as the control panel edits it: form values
// in, validation messages and the JSON patch out. Mirrors the generator's own rules, so the
// panel can say what is wrong before the request (the generator checks again and answers 400).

export const EVENT_TYPES = [
  { id: 'page_view', label: 'Page view' },
  { id: 'add_to_cart', label: 'Add to cart' },
  { id: 'purchase', label: 'Purchase' },
  { id: 'payment_failed', label: 'Payment failed' },
  { id: 'refund', label: 'Refund' },
] as const;
export type EventType = (typeof EVENT_TYPES)[number]['id'];
export type Mix = Record<EventType, number>;

export const MAX_RATE = 10_000_000;
export const MAX_EMIT = 1_000_000;

export interface GenConfig {
  rate: number;
  running: boolean;
  mix: Mix;
  invalid_pct: number;
  duplicate_pct: number;
  late_pct: number;
  late_by: number;
  users: number;
  products: number;
  seed?: number;
}

export interface GenStats {
  generated: number;
  by_type: Partial<Record<EventType, number>>;
  valid: number;
  invalid: number;
  duplicates: number;
  late: number;
  dropped: number;
  polled: number;
  buffered: number;
  buffer_capacity: number;
  running: boolean;
  rate: number;
  uptime_s: number;
}

/** The form's raw text values, keyed like the config (mix.<type> for the mix). */
export type FormValues = Record<string, string>;
export type Errors = Record<string, string>;

const EPS = 1e-6;

/** Parses a decimal the user typed; '' and garbage are NaN. */
export function parseField(s: string | undefined): number {
  if (s === undefined) return NaN;
  const t = s.trim().replace(/,/g, '');
  if (!/^[-+]?(\d+\.?\d*|\.\d+)$/.test(t)) return NaN;
  return Number(t);
}

export function mixSum(mix: Partial<Record<EventType, number>>): number {
  let s = 0;
  for (const t of EVENT_TYPES) s += mix[t.id] ?? 0;
  return Math.round(s * 1e6) / 1e6;
}

export function mixFromForm(v: FormValues): Mix {
  const m = {} as Mix;
  for (const t of EVENT_TYPES) m[t.id] = parseField(v[`mix.${t.id}`]);
  return m;
}

export function formFromConfig(c: GenConfig): FormValues {
  const v: FormValues = {
    rate: String(c.rate),
    invalid_pct: String(c.invalid_pct),
    duplicate_pct: String(c.duplicate_pct),
    late_pct: String(c.late_pct),
    late_by: String(c.late_by),
    users: String(c.users),
    products: String(c.products),
  };
  for (const t of EVENT_TYPES) v[`mix.${t.id}`] = String(c.mix?.[t.id] ?? 0);
  return v;
}

function pct(v: FormValues, key: string, errors: Errors, what: string): number {
  const n = parseField(v[key]);
  if (!(n >= 0 && n <= 100)) errors[key] = `${what} must be a number from 0 to 100.`;
  return n;
}

/** Checks the form; an empty result means it can be sent. */
export function validateForm(v: FormValues): Errors {
  const e: Errors = {};
  const rate = parseField(v.rate);
  if (!(rate >= 0 && rate <= MAX_RATE)) e.rate = `Rate must be a number of events/s from 0 to ${MAX_RATE.toLocaleString('en-US')}.`;

  const mix = mixFromForm(v);
  let mixOk = true;
  for (const t of EVENT_TYPES) {
    const n = mix[t.id];
    if (!(n >= 0 && n <= 100)) {
      e[`mix.${t.id}`] = `${t.label} share must be a number from 0 to 100.`;
      mixOk = false;
    }
  }
  if (mixOk) {
    const s = mixSum(mix);
    if (Math.abs(s - 100) > EPS) e.mix = `The type mix must add up to 100 % (now ${s} %).`;
  }

  const inv = pct(v, 'invalid_pct', e, 'Invalid share');
  const dup = pct(v, 'duplicate_pct', e, 'Duplicate share');
  const late = pct(v, 'late_pct', e, 'Late share');
  if (!e.invalid_pct && !e.duplicate_pct && !e.late_pct && inv + dup + late > 100 + EPS)
    e.shares = 'Invalid, duplicate and late shares together must not exceed 100 %.';

  const lateBy = parseField(v.late_by);
  if (!(lateBy >= 0.001 && lateBy <= 7 * 86400)) e.late_by = 'Late by must be seconds from 0.001 to 604,800 (7 days).';
  const users = parseField(v.users);
  if (!(Number.isInteger(users) && users >= 1 && users <= 100_000_000)) e.users = 'Users must be a whole number from 1 to 100,000,000.';
  const products = parseField(v.products);
  if (!(Number.isInteger(products) && products >= 1 && products <= 1_000_000))
    e.products = 'Products must be a whole number from 1 to 1,000,000.';
  if (v.seed !== undefined && v.seed.trim() !== '') {
    const seed = parseField(v.seed);
    if (!(Number.isInteger(seed) && seed >= 0 && seed <= Number.MAX_SAFE_INTEGER))
      e.seed = 'Seed must be a whole number from 0 to 9,007,199,254,740,991.';
  }
  return e;
}

/**
 * The PUT /gen/config body for a valid form: only the fields that differ from `current`
 * (the mix is sent whole when any share changed; an empty seed is not sent).
 */
export function configPatch(v: FormValues, current: GenConfig | null): Partial<GenConfig> {
  const p: Partial<GenConfig> = {};
  const num = (k: 'rate' | 'invalid_pct' | 'duplicate_pct' | 'late_pct' | 'late_by' | 'users' | 'products') => {
    const n = parseField(v[k]);
    if (!current || current[k] !== n) p[k] = n;
  };
  num('rate');
  const mix = mixFromForm(v);
  if (!current || EVENT_TYPES.some((t) => current.mix?.[t.id] !== mix[t.id])) p.mix = mix;
  num('invalid_pct');
  num('duplicate_pct');
  num('late_pct');
  num('late_by');
  num('users');
  num('products');
  if (v.seed !== undefined && v.seed.trim() !== '') p.seed = parseField(v.seed);
  return p;
}

/** Validates the "emit N now" count. */
export function parseEmitCount(s: string): { count?: number; error?: string } {
  const n = parseField(s);
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_EMIT))
    return { error: `Enter a whole number of events from 1 to ${MAX_EMIT.toLocaleString('en-US')}.` };
  return { count: n };
}

/** The generator's answer to a rejected request: {"error": "...", "field": "..."}. */
export function genErrorMessage(body: unknown, status: number): string {
  if (body && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string')
    return (body as { error: string }).error;
  return `The generator answered HTTP ${status}.`;
}
