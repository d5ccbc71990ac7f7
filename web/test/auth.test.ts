import { describe, expect, it } from 'vitest';
import { TOKEN_KEY, adoptToken, authHeader, canControl, forgetToken, readToken, type TokenStore } from '../src/lib/auth';

function store(init: Record<string, string> = {}): TokenStore & { data: Map<string, string> } {
  const data = new Map(Object.entries(init));
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

describe('adoptToken', () => {
  it('stores ?token= and strips it from the URL, keeping the rest', () => {
    const s = store();
    const r = adoptToken('http://127.0.0.1:8083/ui/?gen=http%3A%2F%2F127.0.0.1%3A7070&token=abc123#health', s);
    expect(r.token).toBe('abc123');
    expect(r.cleanUrl).toBe('/ui/?gen=http%3A%2F%2F127.0.0.1%3A7070#health');
    expect(s.data.get(TOKEN_KEY)).toBe('abc123');
  });

  it('strips the only parameter entirely', () => {
    const r = adoptToken('http://127.0.0.1:8083/ui/?token=t', store());
    expect(r.cleanUrl).toBe('/ui/');
  });

  it('without ?token= uses the stored token and leaves the URL alone', () => {
    const r = adoptToken('http://127.0.0.1:8083/ui/generator.html', store({ [TOKEN_KEY]: 'kept' }));
    expect(r).toEqual({ token: 'kept', cleanUrl: null });
  });

  it('a new token replaces the stored one', () => {
    const s = store({ [TOKEN_KEY]: 'old' });
    expect(adoptToken('http://h/ui/?token=new', s).token).toBe('new');
    expect(readToken(s)).toBe('new');
  });

  it('an empty ?token= is stripped and does not erase the stored token', () => {
    const s = store({ [TOKEN_KEY]: 'kept' });
    expect(adoptToken('http://h/ui/?token=', s)).toEqual({ token: 'kept', cleanUrl: '/ui/' });
  });

  it('works when storage is unavailable or throws', () => {
    const throwing: TokenStore = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    };
    expect(adoptToken('http://h/ui/?token=x', throwing).token).toBe('x');
    expect(adoptToken('http://h/ui/', null).token).toBeNull();
    expect(readToken(throwing)).toBeNull();
    expect(() => forgetToken(throwing)).not.toThrow();
  });
});

describe('token use', () => {
  it('sends the token as Bearer, nothing without one', () => {
    expect(authHeader('abc')).toEqual({ Authorization: 'Bearer abc' });
    expect(authHeader(null)).toEqual({});
  });

  it('forgets a refused token', () => {
    const s = store({ [TOKEN_KEY]: 'bad' });
    forgetToken(s);
    expect(readToken(s)).toBeNull();
  });

  it('buttons need a token unless sluice runs with --no-auth', () => {
    expect(canControl(true, null)).toBe(false);
    expect(canControl(true, 'abc')).toBe(true);
    expect(canControl(false, null)).toBe(true);
  });
});
