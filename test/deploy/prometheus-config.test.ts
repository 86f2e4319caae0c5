/**
 * deploy/prometheus checked by Debian's promtool (CI installs the `prometheus` package): the
 * scrape configuration, the recording and alert rules, and the rules' unit tests.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

const PROMTOOL = '/usr/bin/promtool';
const run = (...args: string[]) => execFileSync(PROMTOOL, args, { encoding: 'utf8', stdio: 'pipe' });

describe.runIf(fs.existsSync(PROMTOOL))('deploy/prometheus', () => {
  it('the scrape configuration is valid', () => {
    // --syntax-only: the token file it names exists only on a real install.
    expect(run('check', 'config', '--syntax-only', 'deploy/prometheus/prometheus.yml')).toContain('SUCCESS');
  });

  it('the recording and alert rules are valid', () => {
    const out = run(
      'check',
      'rules',
      'deploy/prometheus/recording-rules.yml',
      'deploy/prometheus/alert-rules.yml',
    );
    expect(out).toMatch(/SUCCESS: 12 rules found[\s\S]*SUCCESS: 9 rules found/);
  });

  it('the alert rules pass their unit tests', () => {
    expect(run('test', 'rules', 'deploy/prometheus/tests/alert-rules.test.yml')).toContain('SUCCESS');
  });
});
