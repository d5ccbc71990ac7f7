import { describe, expect, it } from 'vitest';
import {
  NO_VALUE,
  formatBucket,
  formatClock,
  formatCompact,
  formatCurrency,
  formatCurrencyCompact,
  formatDecimal,
  formatDuration,
  formatInt,
  formatPercent,
  formatRate,
} from '../src/lib/format';

describe('formatCurrency', () => {
  it('uses the currency symbol, thousands separators and two decimals', () => {
    expect(formatCurrency(1234567.8)).toBe('$1,234,567.80');
    expect(formatCurrency(0)).toBe('$0.00');
    expect(formatCurrency(0.005)).toBe('$0.01');
  });
  it('formats other currencies and locales', () => {
    expect(formatCurrency(1234.5, 'EUR')).toBe('€1,234.50');
    expect(formatCurrency(1234.5, 'EUR', 'de-DE')).toBe('1.234,50\u00a0€');
  });
  it('falls back to a plain number with the code for an unknown currency', () => {
    expect(formatCurrency(1234.5, 'not-a-code')).toBe('1,234.50 not-a-code');
  });
  it('shows a dash for missing values', () => {
    expect(formatCurrency(null)).toBe(NO_VALUE);
    expect(formatCurrency(undefined)).toBe(NO_VALUE);
    expect(formatCurrency(NaN)).toBe(NO_VALUE);
    expect(formatCurrency(Infinity)).toBe(NO_VALUE);
  });
  it('compacts for axes', () => {
    expect(formatCurrencyCompact(1_234_567)).toBe('$1.2M');
    expect(formatCurrencyCompact(950)).toBe('$950');
  });
});

describe('numbers', () => {
  it('rounds integers and separates thousands', () => {
    expect(formatInt(1234567)).toBe('1,234,567');
    expect(formatInt(2.6)).toBe('3');
    expect(formatInt(-1500)).toBe('-1,500');
    expect(formatInt(null)).toBe(NO_VALUE);
  });
  it('formats decimals and compact numbers', () => {
    expect(formatDecimal(1234.56, 1)).toBe('1,234.6');
    expect(formatCompact(12345)).toBe('12.3K');
  });
  it('formats rates with fewer decimals as they grow', () => {
    expect(formatRate(0)).toBe('0');
    expect(formatRate(0.123)).toBe('0.12');
    expect(formatRate(3.25)).toBe('3.3');
    expect(formatRate(42.44)).toBe('42.4');
    expect(formatRate(1234.5)).toBe('1,235');
    expect(formatRate(null)).toBe(NO_VALUE);
  });
  it('formats ratios as percentages', () => {
    expect(formatPercent(0.9234)).toBe('92.3%');
    expect(formatPercent(1)).toBe('100.0%');
    expect(formatPercent(0.5, 0)).toBe('50%');
    expect(formatPercent(null)).toBe(NO_VALUE);
  });
});

describe('durations and times', () => {
  it('formats durations', () => {
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(120)).toBe('2 min');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(7260)).toBe('2 h 1 min');
    expect(formatDuration(90000)).toBe('1 d 1 h');
    expect(formatDuration(-1)).toBe(NO_VALUE);
  });
  it('formats bucket starts by bucket size', () => {
    const t = Date.UTC(2024, 2, 3, 14, 5, 0);
    expect(formatBucket(t, '1m', 'en-US', 'UTC')).toBe('14:05');
    expect(formatBucket(t, '1h', 'en-US', 'UTC')).toBe('14:05');
    expect(formatBucket(t, '24h', 'en-US', 'UTC')).toBe('Mar 3');
    expect(formatClock(t + 7000, 'en-US', 'UTC')).toBe('14:05:07');
    expect(formatBucket(NaN, '1m')).toBe(NO_VALUE);
  });
});
