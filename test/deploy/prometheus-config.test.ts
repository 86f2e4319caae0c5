/**
 * deploy/prometheus checked by Debian's promtool (CI installs the `prometheus` package): the
 * scrape configuration, the recording and alert rules, and the rules' unit tests; and the
 * Alertmanager configuration by Debian's amtool (package `prometheus-alertmanager`, also in CI:
 * there a missing amtool fails rather than skips).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const PROMTOOL = '/usr/bin/promtool';
const AMTOOL = '/usr/bin/amtool';
const inCi = process.env.CI === 'true';
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

  it('every Grafana panel query parses, and uses only recorded or exported series names', () => {
    const dash = JSON.parse(fs.readFileSync('deploy/grafana/dashboards/omnivibe-overview.json', 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const exprs = dash.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    // promtool parses PromQL in rule files: each panel query becomes a recording rule.
    const rules = {
      groups: [{ name: 'panels', rules: exprs.map((expr, i) => ({ record: `panel:query_${i}`, expr })) }],
    };
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-panels-')), 'panels.yml');
    fs.writeFileSync(file, JSON.stringify(rules));
    expect(run('check', 'rules', file)).toContain(`SUCCESS: ${exprs.length} rules found`);
    const recorded = fs.readFileSync('deploy/prometheus/recording-rules.yml', 'utf8');
    for (const expr of exprs)
      for (const name of expr.match(/[a-z_]+:[a-z0-9_:]+/g) ?? [])
        expect(recorded, expr).toContain(`record: ${name}`);
  });

  it('the alert rules pass their unit tests', () => {
    expect(run('test', 'rules', 'deploy/prometheus/tests/alert-rules.test.yml')).toContain('SUCCESS');
  });
});

describe.runIf(fs.existsSync(AMTOOL) || inCi)('deploy/prometheus/alertmanager.yml', () => {
  it('is a valid Alertmanager configuration with a Slack and an email receiver', () => {
    const out = execFileSync(AMTOOL, ['check-config', 'deploy/prometheus/alertmanager.yml'], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
    expect(out).toContain('SUCCESS');
    expect(out).toMatch(/- 2 receivers/);
  });

  it('refuses a broken one (the check can fail)', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-am-')), 'alertmanager.yml');
    fs.writeFileSync(file, 'route:\n  receiver: nowhere\nreceivers: []\n');
    const r = spawnSync(AMTOOL, ['check-config', file], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain('undefined receiver "nowhere"');
  });
});
