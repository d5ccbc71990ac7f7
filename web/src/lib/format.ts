// Number and time formatting for the dashboard. Pure functions: the locale is a parameter
// (default en-US, so figures read the same on every machine and in tests).

export const DEFAULT_LOCALE = 'en-US';
export const DEFAULT_CURRENCY = 'USD';

/** What the UI shows for a value that is missing (no data, division by zero). */
export const NO_VALUE = '—';

const cache = new Map<string, Intl.NumberFormat>();
function nf(locale: string, opts: Intl.NumberFormatOptions): Intl.NumberFormat {
  const key = locale + JSON.stringify(opts);
  let f = cache.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, opts);
    cache.set(key, f);
  }
  return f;
}

function usable(v: number | null | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** 1234567.8 → "$1,234,567.80". */
export function formatCurrency(
  v: number | null | undefined,
  currency = DEFAULT_CURRENCY,
  locale = DEFAULT_LOCALE,
): string {
  if (!usable(v)) return NO_VALUE;
  let f: Intl.NumberFormat;
  try {
    f = nf(locale, { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2 });
  } catch {
    // an unknown currency code: plain number with the code after it
    return `${formatDecimal(v, 2, locale)} ${currency}`;
  }
  return f.format(v);
}

/** Short currency for chart axes: 1234567 → "$1.2M". */
export function formatCurrencyCompact(
  v: number | null | undefined,
  currency = DEFAULT_CURRENCY,
  locale = DEFAULT_LOCALE,
): string {
  if (!usable(v)) return NO_VALUE;
  try {
    return nf(locale, { style: 'currency', currency, notation: 'compact', minimumFractionDigits: 0, maximumFractionDigits: 1 }).format(v);
  } catch {
    return formatCompact(v, locale);
  }
}

/** Whole numbers with thousands separators: 1234567 → "1,234,567". */
export function formatInt(v: number | null | undefined, locale = DEFAULT_LOCALE): string {
  if (!usable(v)) return NO_VALUE;
  return nf(locale, { maximumFractionDigits: 0 }).format(Math.round(v));
}

/** A number with a fixed count of decimals and separators: (1234.5, 1) → "1,234.5". */
export function formatDecimal(v: number | null | undefined, digits = 1, locale = DEFAULT_LOCALE): string {
  if (!usable(v)) return NO_VALUE;
  return nf(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);
}

/** 12345 → "12.3K" (axes, tight spaces). */
export function formatCompact(v: number | null | undefined, locale = DEFAULT_LOCALE): string {
  if (!usable(v)) return NO_VALUE;
  return nf(locale, { notation: 'compact', maximumFractionDigits: 1 }).format(v);
}

/** A ratio 0..1 as a percentage: 0.9234 → "92.3%". */
export function formatPercent(ratio: number | null | undefined, digits = 1, locale = DEFAULT_LOCALE): string {
  if (!usable(ratio)) return NO_VALUE;
  return nf(locale, { style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits }).format(ratio);
}

/** A rate: 0 → "0", 3.25 → "3.3", 1234.5 → "1,235" (fewer decimals as it grows). */
export function formatRate(v: number | null | undefined, locale = DEFAULT_LOCALE): string {
  if (!usable(v)) return NO_VALUE;
  if (v === 0) return '0';
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 1 : 2;
  return nf(locale, { maximumFractionDigits: digits }).format(v);
}

/** Seconds as a short duration: 42 → "42 s", 125 → "2 min 5 s", 7260 → "2 h 1 min". */
export function formatDuration(seconds: number | null | undefined): string {
  if (!usable(seconds) || seconds < 0) return NO_VALUE;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60), r = s % 60;
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  if (s < 86400) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  return h ? `${d} d ${h} h` : `${d} d`;
}

/** A bucket's start as the chart and the headline label show it, in the viewer's time zone
 *  unless one is given: ('1m', t) → "14:05", ('24h', t) → "Mar 3". */
export function formatBucket(ms: number, bucket: string, locale = DEFAULT_LOCALE, timeZone?: string): string {
  if (!Number.isFinite(ms)) return NO_VALUE;
  const d = new Date(ms);
  const opts: Intl.DateTimeFormatOptions =
    bucket === '24h'
      ? { month: 'short', day: 'numeric' }
      : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (timeZone) opts.timeZone = timeZone;
  return new Intl.DateTimeFormat(locale, opts).format(d);
}

/** Clock time with seconds, for "updated at". */
export function formatClock(ms: number, locale = DEFAULT_LOCALE, timeZone?: string): string {
  if (!Number.isFinite(ms)) return NO_VALUE;
  const opts: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
  if (timeZone) opts.timeZone = timeZone;
  return new Intl.DateTimeFormat(locale, opts).format(new Date(ms));
}
