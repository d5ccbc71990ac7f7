import { describe, expect, it } from 'vitest';
import {
  configPatch,
  formFromConfig,
  genErrorMessage,
  mixSum,
  parseEmitCount,
  parseField,
  validateForm,
  type GenConfig,
} from '../src/lib/genconfig';

const CFG: GenConfig = {
  rate: 100,
  running: true,
  mix: { page_view: 30, add_to_cart: 25, purchase: 35, payment_failed: 8, refund: 2 },
  invalid_pct: 2,
  duplicate_pct: 2,
  late_pct: 5,
  late_by: 60,
  users: 10000,
  products: 500,
  seed: 1,
};

describe('parseField', () => {
  it('reads decimals, allows thousands separators, refuses junk', () => {
    expect(parseField('12.5')).toBe(12.5);
    expect(parseField(' 1,000 ')).toBe(1000);
    expect(parseField('')).toBeNaN();
    expect(parseField('1e3')).toBeNaN();
    expect(parseField('abc')).toBeNaN();
    expect(parseField(undefined)).toBeNaN();
  });
});

describe('validateForm', () => {
  it('accepts the defaults', () => {
    expect(validateForm(formFromConfig(CFG))).toEqual({});
  });
  it('requires the mix to add up to 100 %', () => {
    const v = { ...formFromConfig(CFG), 'mix.purchase': '36' };
    expect(validateForm(v).mix).toMatch(/add up to 100 %.*101/);
  });
  it('accepts a mix with decimals that adds up to 100', () => {
    const v = { ...formFromConfig(CFG), 'mix.page_view': '33.3', 'mix.add_to_cart': '33.3', 'mix.purchase': '33.4', 'mix.payment_failed': '0', 'mix.refund': '0' };
    expect(validateForm(v)).toEqual({});
  });
  it('flags a share out of range on its own field, not as a sum error', () => {
    const e = validateForm({ ...formFromConfig(CFG), 'mix.refund': '-2', 'mix.purchase': '39' });
    expect(e['mix.refund']).toMatch(/0 to 100/);
    expect(e.mix).toBeUndefined();
  });
  it('checks rate, shares, late_by, users, products and seed', () => {
    const e = validateForm({
      ...formFromConfig(CFG),
      rate: '-1',
      invalid_pct: '101',
      late_by: '0',
      users: '1.5',
      products: '0',
      seed: '-4',
    });
    expect(Object.keys(e).sort()).toEqual(['invalid_pct', 'late_by', 'products', 'rate', 'seed', 'users']);
    const s = validateForm({ ...formFromConfig(CFG), invalid_pct: '50', duplicate_pct: '30', late_pct: '30' });
    expect(s.shares).toMatch(/must not exceed 100/);
  });
});

describe('configPatch', () => {
  it('sends only what changed', () => {
    expect(configPatch(formFromConfig(CFG), CFG)).toEqual({});
    expect(configPatch({ ...formFromConfig(CFG), rate: '250' }, CFG)).toEqual({ rate: 250 });
  });
  it('sends the whole mix when one share changed', () => {
    const p = configPatch({ ...formFromConfig(CFG), 'mix.purchase': '30', 'mix.page_view': '35' }, CFG);
    expect(p).toEqual({ mix: { page_view: 35, add_to_cart: 25, purchase: 30, payment_failed: 8, refund: 2 } });
  });
  it('sends everything without a current config, and a seed only when given', () => {
    const p = configPatch({ ...formFromConfig(CFG), seed: ' 42 ' }, null);
    expect(p).toMatchObject({ rate: 100, users: 10000, seed: 42 });
    expect('running' in p).toBe(false);
    expect('seed' in configPatch({ ...formFromConfig(CFG), seed: '' }, null)).toBe(false);
  });
});

describe('emit and errors', () => {
  it('validates the emit count', () => {
    expect(parseEmitCount('500')).toEqual({ count: 500 });
    expect(parseEmitCount('1,000')).toEqual({ count: 1000 });
    expect(parseEmitCount('0').error).toBeDefined();
    expect(parseEmitCount('2.5').error).toBeDefined();
    expect(parseEmitCount('1000001').error).toBeDefined();
  });
  it("shows the generator's own message", () => {
    expect(genErrorMessage({ error: 'mix must sum to 100 (got 99)', field: 'mix' }, 400)).toBe('mix must sum to 100 (got 99)');
    expect(genErrorMessage('oops', 502)).toBe('The generator answered HTTP 502.');
  });
  it('sums a mix', () => {
    expect(mixSum({ page_view: 0.1, add_to_cart: 0.2 })).toBe(0.3);
  });
});
