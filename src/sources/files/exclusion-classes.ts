/**
 * Named classes of exclusion patterns. Contact-center stacks hold call and voice
 * recordings and detailed logs that are large and usually kept elsewhere or not at all;
 * they are left out by default and every snapshot reports what was left out.
 * Prompts and sounds (e.g. Asterisk's sounds folder) are NOT recordings and are kept.
 */
export const DEFAULT_EXCLUSION_CLASSES: Readonly<Record<string, readonly string[]>> = {
  recordings: ['recordings/', 'call-recordings/', 'voice-recordings/', 'monitor/', '*.recording.*'],
  logs: ['*.log', '*.log.[0-9]*', '*.log.gz', 'logs/', 'log/'],
};

/** The classes in force: defaults, changed or added by the stack, minus those it switches off. */
export function resolveExclusionClasses(
  overrides: Readonly<Record<string, readonly string[] | false>> = {},
): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = { ...DEFAULT_EXCLUSION_CLASSES };
  for (const [name, patterns] of Object.entries(overrides)) {
    if (patterns === false) delete out[name];
    else out[name] = patterns;
  }
  return out;
}
