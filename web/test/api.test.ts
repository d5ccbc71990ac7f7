import { describe, expect, it } from 'vitest';
import { Connection, HttpError, NetworkError, generatorUrl, request } from '../src/lib/api';

describe('Connection', () => {
  it('turns disconnected after repeated network failures and back on an answer', () => {
    const seen: string[] = [];
    const c = new Connection((s) => seen.push(s), 2);
    expect(c.state).toBe('connecting');
    c.ok(1000);
    expect(c.fail(new NetworkError('refused'))).toBe(true);
    expect(c.state).toBe('connected');
    c.fail(new NetworkError('refused'));
    expect(c.state).toBe('disconnected');
    expect(c.lastOkMs).toBe(1000);
    c.fail(new HttpError(500, null, 'db down')); // an HTTP answer means the server is there
    expect(c.state).toBe('connected');
    expect(seen).toEqual(['connected', 'disconnected', 'connected']);
  });
});

describe('generatorUrl', () => {
  it('prefers ?gen=, then the config, then the default; trims slashes', () => {
    expect(generatorUrl({ generator_url: 'http://127.0.0.1:9000/' }, '?gen=http://127.0.0.1:7171')).toBe('http://127.0.0.1:7171');
    expect(generatorUrl({ generator_url: 'http://127.0.0.1:9000/' }, '')).toBe('http://127.0.0.1:9000');
    expect(generatorUrl(null, '')).toBe('http://127.0.0.1:7070');
  });
});

describe('request headers', () => {
  it('sends extra headers (the Bearer token) along with the JSON content type', async () => {
    const seen: RequestInit[] = [];
    const real = globalThis.fetch;
    globalThis.fetch = (async (_url: string, init: RequestInit) => {
      seen.push(init);
      return new Response('{}', { status: 200 });
    }) as typeof fetch;
    try {
      await request('/connectors/x/pause', { method: 'PUT', headers: { Authorization: 'Bearer t' } });
      await request('/connectors', { method: 'POST', body: { name: 'x' }, headers: { Authorization: 'Bearer t' } });
      await request('/metrics');
    } finally {
      globalThis.fetch = real;
    }
    expect(seen[0].headers).toEqual({ Authorization: 'Bearer t' });
    expect(seen[1].headers).toEqual({ 'Content-Type': 'application/json', Authorization: 'Bearer t' });
    expect(seen[2].headers).toEqual({});
  });

  it('a 401 is an HttpError with the status, so the page can forget the token', async () => {
    const real = globalThis.fetch;
    globalThis.fetch = (async () =>
      new Response('{"error_code":401,"message":"invalid bearer token"}', { status: 401 })) as unknown as typeof fetch;
    try {
      await expect(request('/connectors/x/pause', { method: 'PUT' })).rejects.toMatchObject({ status: 401, message: 'invalid bearer token' });
    } finally {
      globalThis.fetch = real;
    }
  });
});
