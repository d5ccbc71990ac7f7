import { describe, expect, it } from 'vitest';
import { Connection, HttpError, NetworkError, generatorUrl } from '../src/lib/api';

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
