import type { PartitionStatus } from './coordinator.js';

/**
 * The coordinator's status page: one timeline per partition, drawn as inline SVG so the page
 * needs no script or asset. The axis runs over the LSNs that matter (trimmed history, the
 * retained log, what is archived and where each replica stands); every marker carries its
 * LSN in `data-lsn`, so the picture can be checked by a browser test as well as by eye.
 */
const WIDTH = 900;
const LEFT = 20;
const RIGHT = 20;
const AXIS_Y = 70;

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

interface Marker {
  kind: 'log-start' | 'safe-trim' | 'archived' | 'replica' | 'log-end';
  lsn: number;
  label: string;
  color: string;
}

function markersOf(s: PartitionStatus): Marker[] {
  const markers: Marker[] = [];
  if (s.log) markers.push({ kind: 'log-start', lsn: s.log.start, label: `log start / trim point ${s.log.start}`, color: '#334155' });
  if (s.safeTrimPoint !== null && s.log && s.safeTrimPoint !== s.log.start) markers.push({ kind: 'safe-trim', lsn: s.safeTrimPoint, label: `next trim ${s.safeTrimPoint}`, color: '#b45309' });
  if (s.archivedLsn !== null) markers.push({ kind: 'archived', lsn: s.archivedLsn, label: `archived ${s.archivedLsn}`, color: '#15803d' });
  for (const r of s.replicas) markers.push({ kind: 'replica', lsn: Math.max(0, r.appliedLsn), label: `${r.node} ${r.appliedLsn}${r.live ? '' : ' (silent)'}`, color: r.live ? '#1d4ed8' : '#94a3b8' });
  if (s.log) markers.push({ kind: 'log-end', lsn: s.log.end, label: `log end ${s.log.end}`, color: '#334155' });
  return markers;
}

function timeline(s: PartitionStatus): string {
  const markers = markersOf(s);
  const lsns = markers.map((m) => m.lsn);
  const lo = Math.min(0, ...lsns);
  const hi = Math.max(lo + 1, ...lsns);
  const x = (lsn: number) => LEFT + ((lsn - lo) / (hi - lo)) * (WIDTH - LEFT - RIGHT);
  const height = AXIS_Y + 30 + markers.length * 16;
  const parts: string[] = [];
  parts.push(`<line class="axis" x1="${LEFT}" y1="${AXIS_Y}" x2="${WIDTH - RIGHT}" y2="${AXIS_Y}" stroke="#cbd5e1" stroke-width="2"/>`);
  if (s.log) {
    const trimmedW = Math.max(0, x(s.log.start) - LEFT);
    parts.push(`<rect class="segment trimmed" x="${LEFT}" y="${AXIS_Y - 10}" width="${trimmedW.toFixed(1)}" height="20" fill="#e2e8f0"><title>trimmed: LSN ${lo} to ${s.log.start - 1}</title></rect>`);
    const retainedW = Math.max(2, x(s.log.end) - x(s.log.start));
    parts.push(`<rect class="segment retained" x="${x(s.log.start).toFixed(1)}" y="${AXIS_Y - 10}" width="${retainedW.toFixed(1)}" height="20" fill="#bfdbfe"><title>in the log: LSN ${s.log.start} to ${s.log.end - 1}</title></rect>`);
  }
  markers.forEach((m, i) => {
    const mx = x(m.lsn).toFixed(1);
    const labelY = AXIS_Y + 28 + i * 16;
    const anchor = x(m.lsn) > WIDTH * 0.7 ? 'end' : 'start';
    parts.push(
      `<g class="marker marker-${m.kind}" data-lsn="${m.lsn}" data-kind="${m.kind}">` +
        `<line x1="${mx}" y1="${AXIS_Y - 22}" x2="${mx}" y2="${labelY - 10}" stroke="${m.color}" stroke-width="2"/>` +
        `<text x="${mx}" y="${labelY}" font-size="12" fill="${m.color}" text-anchor="${anchor}">${esc(m.label)}</text></g>`,
    );
  });
  return `<svg class="timeline" data-partition="${esc(s.partition)}" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="timeline of ${esc(s.partition)}">${parts.join('')}</svg>`;
}

function details(s: PartitionStatus): string {
  // Values are HTML: every piece of text goes through esc().
  const rows: Array<[string, string]> = [
    ['log', esc(s.log ? `${s.log.start} … ${s.log.end} (${s.log.end - s.log.start} offsets${s.log.via === 'processor' ? ', as reported by its processor' : ''})` : `unavailable${s.logError ? `: ${s.logError.message}` : ''}`)],
    ['archived LSN', esc(s.archivedLsn === null ? 'none (no verified snapshot)' : `${s.archivedLsn}${s.archivedSnapshot ? ` (snapshot ${s.archivedSnapshot.snapshotId})` : ''}`)],
    ['latest snapshot', esc(s.latestSnapshot ? `${s.latestSnapshot.lsn} at ${new Date(s.latestSnapshot.createdAt).toISOString()}` : 'none')],
    ['next trim', esc(s.safeTrimPoint === null ? '–' : `before ${s.safeTrimPoint}: ${s.reasons.join('; ')}`)],
    ['last trim', esc(s.lastTrim ? `before ${s.lastTrim.before} at ${s.lastTrim.at} (${s.lastTrim.mode}${s.lastTrim.delegated ? ', by its processor' : ''})` : 'none since this coordinator started')],
    ['replicas', s.replicas.length === 0 ? 'none reported' : s.replicas.map((r) => esc(`${r.node}: applied ${r.appliedLsn}, snapshot ${r.snapshotLsn}, seen ${r.lastSeen}${r.live ? '' : ' (silent)'}`)).join('<br>')],
  ];
  const pending = s.snapshotRequests.filter((r) => r.status === 'pending');
  if (pending.length > 0) rows.push(['snapshot requests', pending.map((r) => esc(`≥ ${r.minLsn} (${r.answers.map((a) => `${a.node}: ${a.status}`).join(', ') || 'not answered yet'})`)).join('<br>')]);
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

export function renderStatusPage(statuses: PartitionStatus[], context: { policy: string; now: Date }): string {
  const sections = statuses.map((s) => `<section class="partition" id="partition-${esc(s.partition)}"><h2>${esc(s.partition)}</h2>${timeline(s)}${details(s)}</section>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>Cairn coordinator</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#0f172a}
section{border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;margin:16px 0}
h2{margin:0 0 8px;font-size:16px}
table{border-collapse:collapse}th{text-align:left;padding:2px 12px 2px 0;vertical-align:top;color:#475569;font-weight:500}
</style></head>
<body><h1>Cairn coordinator</h1>
<p>Policy <b>${esc(context.policy)}</b> · ${statuses.length} partition(s) · ${esc(context.now.toISOString())}</p>
${sections.join('\n') || '<p>No partitions yet: nothing in the log or the store.</p>'}
</body></html>`;
}
