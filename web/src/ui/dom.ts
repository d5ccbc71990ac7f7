// A few DOM helpers; the pages are plain TypeScript, no framework.

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function $(sel: string, root: ParentNode = document): HTMLElement {
  const el = root.querySelector<HTMLElement>(sel);
  if (!el) throw new Error(`missing element ${sel}`);
  return el;
}

/** Sets text only when it changed (keeps screen readers and layout calm). */
export function setText(el: Element, s: string): void {
  if (el.textContent !== s) el.textContent = s;
}

/** A polite status message for screen readers and sighted users alike. */
export function announce(region: HTMLElement, msg: string, kind: 'ok' | 'error' = 'ok'): void {
  region.dataset.kind = kind;
  region.textContent = msg;
}
