// A tolerant parser for the Prometheus text exposition format (version 0.0.4): enough for
// counters and gauges. Comments, HELP/TYPE lines, histogram buckets and malformed lines are
// skipped, never thrown on.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseValue(s: string): number {
  switch (s) {
    case '+Inf': return Infinity;
    case '-Inf': return -Infinity;
    case 'NaN': return NaN;
    default: return s.trim() === '' ? NaN : Number(s);
  }
}

/** Parses `{a="x",b="y\"z"}` starting at text[i] === '{'; returns labels and the index after '}'. */
function parseLabels(text: string, i: number): { labels: Record<string, string>; end: number } | null {
  const labels: Record<string, string> = {};
  i++; // '{'
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i++;
    if (text[i] === '}') return { labels, end: i + 1 };
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (!m) return null;
    const key = m[0];
    i += key.length;
    while (text[i] === ' ') i++;
    if (text[i] !== '=') return null;
    i++;
    while (text[i] === ' ') i++;
    if (text[i] !== '"') return null;
    i++;
    let val = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) return null;
      if (c === '"') { i++; break; }
      if (c === '\\') {
        const n = text[i + 1];
        val += n === 'n' ? '\n' : n ?? '';
        i += 2;
        continue;
      }
      val += c;
      i++;
    }
    labels[key] = val;
  }
}

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line);
    if (!m) continue;
    const name = m[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') {
      const p = parseLabels(line, i);
      if (!p) continue;
      labels = p.labels;
      i = p.end;
    }
    const rest = line.slice(i).trim().split(/\s+/);
    if (!rest[0]) continue;
    const value = parseValue(rest[0]);
    if (Number.isNaN(value) && rest[0] !== 'NaN') continue;
    out.push({ name, labels, value });
  }
  return out;
}

/** The samples of the first name in `names` that occurs at all. */
export function pick(samples: Sample[], names: readonly string[]): Sample[] {
  for (const n of names) {
    const hit = samples.filter((s) => s.name === n);
    if (hit.length) return hit;
  }
  return [];
}

export function label(s: Sample, keys: readonly string[]): string | undefined {
  for (const k of keys) if (s.labels[k] !== undefined) return s.labels[k];
  return undefined;
}
