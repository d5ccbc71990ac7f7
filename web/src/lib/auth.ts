// The REST token, the way Jupyter hands it over: sluice prints a URL that carries it
// (http://127.0.0.1:8083/ui/?token=...). The page keeps it in sessionStorage (this tab only,
// gone when the tab closes), removes it from the address bar so it does not stay in the history
// or get copied along with the URL, and sends it as a Bearer token to sluice (never to
// sluice-gen, which is another origin).

export const TOKEN_KEY = 'sluice.token';

/** The storage subset used here (sessionStorage in the browser; a Map-backed fake in tests). */
export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Takes `?token=` from `href` into `store` and returns the URL without it (null when there was
 * none to strip), plus the token now in effect (from the URL, else the one stored earlier).
 */
export function adoptToken(href: string, store: TokenStore | null): { token: string | null; cleanUrl: string | null } {
  const url = new URL(href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl === null) return { token: readToken(store), cleanUrl: null };
  url.searchParams.delete('token');
  const token = fromUrl.trim();
  if (token) {
    try {
      store?.setItem(TOKEN_KEY, token);
    } catch {
      /* storage disabled: the token still works on this page */
    }
  }
  return { token: token || readToken(store), cleanUrl: url.pathname + url.search + url.hash };
}

export function readToken(store: TokenStore | null): string | null {
  try {
    return store?.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

/** Forgets a token sluice refused (401), so the page shows that it needs a new one. */
export function forgetToken(store: TokenStore | null): void {
  try {
    store?.removeItem(TOKEN_KEY);
  } catch {
    /* nothing stored */
  }
}

/** The Authorization header for a call to sluice. */
export function authHeader(token: string | null): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * Whether Pause/Resume/Restart can work: sluice needs no token (--no-auth, per /api/config's
 * `auth: false`) or the page has one.
 */
export function canControl(authRequired: boolean, token: string | null): boolean {
  return !authRequired || !!token;
}

/** Adopts the token on a page load: stores it and rewrites the address bar without it. */
export function adoptFromLocation(): string | null {
  let store: TokenStore | null = null;
  try {
    store = window.sessionStorage;
  } catch {
    store = null;
  }
  const { token, cleanUrl } = adoptToken(window.location.href, store);
  if (cleanUrl !== null) window.history.replaceState(window.history.state, '', cleanUrl);
  return token;
}
