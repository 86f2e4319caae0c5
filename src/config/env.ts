import { z } from 'zod';

/** Helpers every `*.config.ts` uses to parse its environment variables (no imports of config.ts: no cycles). */

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** An optional integer variable within [min, max] with a default; the message names the accepted range. */
export const intVar = (min: number, max: number, def: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, `an integer from ${min} to ${max}`)
        .max(max, `an integer from ${min} to ${max}`),
    )
    .optional()
    .transform((v) => v ?? def);

/** An optional http(s) URL variable; the message says what it is for. */
export const httpUrl = (what: string) =>
  z
    .string()
    .trim()
    .refine((v) => {
      try {
        const u = new URL(v);
        return u.protocol === 'https:' || u.protocol === 'http:';
      } catch {
        return false;
      }
    }, `an http(s) URL (${what})`)
    .optional();

/**
 * Parses environment variables with a zod object schema; throws ConfigError naming
 * each bad variable and what it accepts. Capabilities (cache, jobs, media) parse
 * their own variables with it in their `*.config.ts` and `loadConfig` composes them.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  // Empty strings mean "unset", as in most .env tooling.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0] ?? '?');
        return `${name}=${JSON.stringify(cleaned[name] ?? '')} is invalid: expected ${i.message}`;
      }),
    );
  }
  return parsed.data;
}
