import type { StackConfig } from '../../config/schema.js';
import { parseDuration } from '../../util/format.js';
import type { Snapshot, SnapshotRef } from '../snapshot.js';

/** restic's retention rules; a count of -1 means unlimited. */
export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** keep everything this recent, relative to the newest snapshot of the group, e.g. "30d" */
  within?: string;
  /** keep every snapshot that has all of these tags */
  tags?: string[];
}

/** The retention rules of stackvault.yaml; an empty policy when it has none. */
export function retentionPolicyOf(r: StackConfig['retention']): RetentionPolicy {
  if (!r) return {};
  return { last: r.keep_last, hourly: r.keep_hourly, daily: r.keep_daily, weekly: r.keep_weekly, monthly: r.keep_monthly, yearly: r.keep_yearly, within: r.keep_within, tags: r.keep_tags };
}

export type GroupKey = 'host' | 'stack' | 'paths' | 'tags';

export interface RetentionDecision {
  group: string;
  keep: Array<{ ref: SnapshotRef; reasons: string[] }>;
  remove: SnapshotRef[];
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return !p.last && !p.hourly && !p.daily && !p.weekly && !p.monthly && !p.yearly && !p.within && !(p.tags && p.tags.length);
}

function isoWeek(d: Date): number {
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const day = (t.getDay() + 6) % 7;
  t.setDate(t.getDate() - day + 3);
  const firstThursday = new Date(t.getFullYear(), 0, 4);
  const week = 1 + Math.round(((t.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7);
  return t.getFullYear() * 100 + week;
}

const BUCKETS: Array<{ key: keyof RetentionPolicy; reason: string; value: (d: Date, i: number) => number }> = [
  { key: 'last', reason: 'last snapshot', value: (_d, i) => i },
  { key: 'hourly', reason: 'hourly snapshot', value: (d) => ((d.getFullYear() * 100 + d.getMonth()) * 100 + d.getDate()) * 100 + d.getHours() },
  { key: 'daily', reason: 'daily snapshot', value: (d) => (d.getFullYear() * 100 + d.getMonth()) * 100 + d.getDate() },
  { key: 'weekly', reason: 'weekly snapshot', value: (d) => isoWeek(d) },
  { key: 'monthly', reason: 'monthly snapshot', value: (d) => d.getFullYear() * 100 + d.getMonth() },
  { key: 'yearly', reason: 'yearly snapshot', value: (d) => d.getFullYear() },
];

export function groupKeyOf(s: Snapshot, by: GroupKey[]): string {
  const parts: string[] = [];
  if (by.includes('host')) parts.push(`host=${s.host}`);
  if (by.includes('stack')) parts.push(`stack=${s.stack ?? ''}`);
  if (by.includes('paths')) parts.push(`sources=${s.sources.map((x) => `${x.name}:${x.path}`).sort().join(',')}`);
  if (by.includes('tags')) parts.push(`tags=${s.tags.join(',')}`);
  return parts.join(' ');
}

/**
 * Apply the policy per group the way restic does: newest first, a snapshot is kept by a
 * time bucket rule if it is the newest one in a bucket not yet used by that rule, while
 * the rule still has count left.
 */
export function applyRetention(refs: SnapshotRef[], policy: RetentionPolicy, groupBy: GroupKey[] = ['host', 'stack', 'paths']): RetentionDecision[] {
  const groups = new Map<string, SnapshotRef[]>();
  for (const ref of refs) {
    const key = groupKeyOf(ref.snapshot, groupBy);
    groups.set(key, [...(groups.get(key) ?? []), ref]);
  }
  const withinMs = policy.within ? parseDuration(policy.within) : undefined;
  const decisions: RetentionDecision[] = [];
  for (const [group, members] of groups) {
    const sorted = [...members].sort((a, b) => b.snapshot.time.localeCompare(a.snapshot.time) || b.id.localeCompare(a.id));
    const counters = BUCKETS.map((b) => ({ ...b, left: (policy[b.key] as number | undefined) ?? 0, last: NaN }));
    const newest = sorted[0] ? new Date(sorted[0].snapshot.time).getTime() : 0;
    const decision: RetentionDecision = { group, keep: [], remove: [] };
    sorted.forEach((ref, i) => {
      const time = new Date(ref.snapshot.time);
      const reasons: string[] = [];
      if (policy.tags && policy.tags.length && policy.tags.every((t) => ref.snapshot.tags.includes(t))) reasons.push(`tagged ${policy.tags.join(',')}`);
      if (withinMs !== undefined && time.getTime() > newest - withinMs) reasons.push(`within ${policy.within}`);
      for (const c of counters) {
        if (c.left === 0) continue;
        const value = c.value(time, i);
        if (value !== c.last) {
          reasons.push(c.reason);
          c.last = value;
          if (c.left > 0) c.left--;
        }
      }
      if (reasons.length) decision.keep.push({ ref, reasons });
      else decision.remove.push(ref);
    });
    decisions.push(decision);
  }
  return decisions;
}
