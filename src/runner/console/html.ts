/**
 * The console's HTML: pages rendered on the server, styled by Pico CSS (shipped with the
 * package, served from /assets: no CDN, works offline), no script at all, so the
 * content-security policy can forbid every script.
 */

/** Text for HTML: every value that reaches a page goes through here. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface PageOptions {
  title: string;
  stack: string;
  /** the CSRF token forms post back */
  csrf: string;
  /** a message after an action */
  notice?: string;
  active: 'status' | 'snapshots' | 'history' | 'drills' | 'incarnations';
}

export function page(options: PageOptions, body: string): string {
  const nav = (href: string, label: string, key: PageOptions['active']) =>
    `<li><a href="${href}"${options.active === key ? ' aria-current="page"' : ''}>${label}</a></li>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(options.title)} · ${esc(options.stack)} · stackvault</title>
<link rel="stylesheet" href="/assets/pico.min.css">
<link rel="stylesheet" href="/assets/console.css">
</head>
<body>
<header class="container">
<nav>
<ul><li><strong>stackvault</strong> · ${esc(options.stack)}</li></ul>
<ul>${nav('/', 'Status', 'status')}${nav('/history', 'Jobs', 'history')}${nav('/drills', 'Drills', 'drills')}${nav('/snapshots', 'Snapshots', 'snapshots')}${nav('/incarnations', 'Incarnations', 'incarnations')}</ul>
</nav>
</header>
<main class="container">
${options.notice ? `<article class="notice" role="status">${esc(options.notice)}</article>` : ''}
<h1>${esc(options.title)}</h1>
${body}
</main>
</body>
</html>
`;
}

/** A form that posts an action with the CSRF token. */
export function actionForm(action: string, label: string, csrf: string, fields: Record<string, string> = {}, secondary = false): string {
  const hidden = Object.entries({ ...fields, csrf })
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  return `<form method="post" action="${esc(action)}" class="inline">${hidden}<button type="submit"${secondary ? ' class="secondary"' : ''}>${esc(label)}</button></form>`;
}

/**
 * A bar chart as inline SVG (no script): one bar per value, newest on the right, with
 * each bar's label as its tooltip.
 */
export function barChart(values: Array<{ value: number; label: string }>, unit: (n: number) => string): string {
  if (values.length === 0) return '<p><em>nothing yet</em></p>';
  const width = 600;
  const height = 120;
  const max = Math.max(...values.map((v) => v.value), 1);
  // Room for 30 bars, newest on the right, however few there are yet.
  const bar = width / Math.max(values.length, 30);
  const left = width - values.length * bar;
  const bars = values
    .map((v, i) => {
      const h = Math.max(1, Math.round((v.value / max) * (height - 20)));
      return `<rect x="${(left + i * bar + 1).toFixed(1)}" y="${height - h}" width="${Math.max(1, bar - 2).toFixed(1)}" height="${h}"><title>${esc(v.label)}: ${esc(unit(v.value))}</title></rect>`;
    })
    .join('');
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="largest ${esc(unit(max))}"><text x="0" y="12">${esc(unit(max))}</text>${bars}</svg>`;
}

/** Links to the pages before and after, for lists that are shown a page at a time. */
export function pager(base: string, pageIndex: number, pages: number, extra: Record<string, string> = {}): string {
  if (pages <= 1) return '';
  const link = (i: number, label: string) => {
    const query = new URLSearchParams({ ...extra, page: String(i) });
    return `<a href="${esc(`${base}?${query}`)}">${label}</a>`;
  };
  return `<nav class="pager">${pageIndex > 0 ? link(pageIndex - 1, '← newer') : ''} page ${pageIndex + 1} of ${pages} ${pageIndex < pages - 1 ? link(pageIndex + 1, 'older →') : ''}</nav>`;
}

export const CONSOLE_CSS = `
.inline { display: inline-block; margin: 0 .5rem .5rem 0; }
.inline button { margin: 0; padding: .35rem .8rem; }
.chart { width: 100%; max-width: 48rem; height: 8rem; display: block; }
.chart rect { fill: var(--pico-primary); }
.chart text { font-size: 10px; fill: var(--pico-muted-color); }
.ok { color: #2e7d32; } .bad { color: #c62828; font-weight: bold; }
.notice { padding: .75rem 1rem; }
.pager { margin: 1rem 0; }
td.num, th.num { text-align: right; }
code.path { word-break: break-all; }
`;
