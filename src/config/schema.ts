import { Cron } from 'croner';
import { z } from 'zod';
import { serverSchema } from '../sources/mariadb/config.js';
import { sourceEntrySchema } from '../sources/config-schema.js';

/** stackvault.yaml, version 1. Keys are snake_case like borgmatic's and compose's. */
const patternList = z.array(z.string().min(1, 'a pattern may not be empty'));

/** A cron expression (5 fields, or 6 with seconds first), checked by the scheduler's own parser. */
const cronText = z.string().refine(
  (expr) => {
    try {
      new Cron(expr, { paused: true });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected a cron expression such as "0 2 * * *" (minute hour day month weekday)' },
);

const timeZone = z.string().refine(
  (zone) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an IANA time zone such as "Europe/Berlin" or "UTC"' },
);

const shareText = z.string().regex(/^(\d+(\.\d+)?%|\d+\/\d+)$/, 'expected a share such as "5%" or "1/20"');


const durationText = z.string().regex(/^(\d+[ymwdh])+$|^\d+$/, 'expected a duration such as 30d, 12h or 1y6m');

export const configSchema = z.strictObject({
  version: z.literal(1).default(1),
  stack: z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, 'a stack name is lower case letters, digits, ".", "_" and "-"'),
  host: z.string().optional(),
  /** the application this stack runs: its wanted version, and the images of each version */
  application: z
    .strictObject({
      /** the application's name in the vendor's release store; the stack's name when omitted */
      name: z.string().min(1).optional(),
      version: z.union([z.string().min(1), z.number().transform(String)]),
      /** per version, the variables the compose files take image names from, e.g. WEB_IMAGE */
      images: z.record(z.string(), z.record(z.string(), z.string().min(1))).optional(),
    })
    .optional(),
  /** the stack's containers (stackvault up, update, rollback) */
  compose: z
    .strictObject({
      /** compose files, relative to stackvault.yaml */
      files: z.array(z.string().min(1)).min(1).default(['docker-compose.yml']),
      /** the compose project name; the stack's name when omitted */
      project: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a compose project name is lower case letters, digits, "_" and "-"').optional(),
      /** seconds to wait for every health check after starting */
      health_timeout: z.number().int().min(1).default(300),
    })
    .optional(),
  /** the vendor's repository of releases (stackvault release pull) */
  release_store: z
    .strictObject({
      url: z.string().min(1),
      password_env: z.string().optional(),
      password_file: z.string().optional(),
    })
    .optional(),
  repository: z.strictObject({
    url: z.string().min(1),
    password_env: z.string().optional(),
    password_file: z.string().optional(),
    /** days every object stays immutable; recorded in the repository at init */
    immutability_days: z.number().int().min(0).optional(),
  }),
  sources: z.array(sourceEntrySchema).min(1, 'at least one source is needed'),
  /** change a default class (recordings, logs), add one, or switch one off with false */
  exclusion_classes: z.record(z.string(), z.union([patternList, z.literal(false)])).optional(),
  tags: z.array(z.string()).optional(),
  /** what the task runner (stackvault run) does when */
  schedule: z
    .strictObject({
      /** time zone of the cron expressions; the host's when omitted */
      time_zone: timeZone.optional(),
      /** backup, then retention (forget, prune, extend-retention), then check */
      backup: cronText.default('0 2 * * *'),
      /** a restore drill into a scratch place; false for none */
      drill: z.union([cronText, z.literal(false)]).default('0 4 * * 0'),
      /** share of packs that the check after each backup reads back; false for a structure check only */
      // A bare number (5) matched neither branch and gave zod's "Invalid input": say what is wanted.
      check_subset: z.union([shareText, z.literal(false)], { error: 'expected a share such as "5%" or "1/20" (quoted), or false' }).default('5%'),
      /** after forgetting by the retention rules, free what nothing needs (within the immutability rules) */
      prune: z.boolean().default(true),
    })
    .optional(),
  runner: z
    .strictObject({
      /** host:port of /healthz, /metrics and /api/status; false for none */
      listen: z.union([z.string().regex(/^[^:]*:\d+$/, 'expected host:port, e.g. 127.0.0.1:9180'), z.literal(false)]).default('127.0.0.1:9180'),
      /** the job history (SQLite) */
      history: z.string().default('.stackvault/history.sqlite'),
      /** a file whose first line is the bearer token /metrics and /api/status need beyond loopback */
      token_file: z.string().optional(),
      /** the web console asks for the token (or its password) on loopback too (a host whose other users should not see it) */
      console_login: z.boolean().optional(),
      /** the web console's password as a hash ("stackvault console --hash-password" prints it); logs in beside the token */
      console_password_hash: z.string().optional(),
      /** a file whose first line is that hash */
      console_password_hash_file: z.string().optional(),
    })
    .optional(),
  drill: z
    .strictObject({
      /** scratch folder the drill restores into (emptied before each drill); a temporary folder when omitted */
      target: z.string().optional(),
      /** scratch server for database sources; their drill is skipped without one */
      database: serverSchema.optional(),
    })
    .optional(),
  notify: z
    .strictObject({
      /** JSON POST after a job fails (and succeeds, with on_success) */
      webhook: z.url().optional(),
      /** healthchecks.io-style URL: /start, the URL itself on success, /fail on failure */
      ping_url: z.url().optional(),
      on_success: z.boolean().default(false),
    })
    .optional(),
  retention: z
    .strictObject({
      keep_last: z.number().int().min(-1).optional(),
      keep_hourly: z.number().int().min(-1).optional(),
      keep_daily: z.number().int().min(-1).optional(),
      keep_weekly: z.number().int().min(-1).optional(),
      keep_monthly: z.number().int().min(-1).optional(),
      keep_yearly: z.number().int().min(-1).optional(),
      keep_within: durationText.optional(),
      keep_tags: z.array(z.string()).optional(),
      /** any moment of the last N days can be recovered from the binary log archive; without it, every kept snapshot can be rolled forward */
      pitr_days: z.number().min(0).optional(),
    })
    .optional(),
});

export type StackConfig = z.infer<typeof configSchema>;
