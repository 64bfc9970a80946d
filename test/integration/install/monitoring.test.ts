// The shipped alerts and dashboard, checked with the real promtool (Debian's prometheus): rules
// that load, alerts that fire on the series Gantry's processes export (promtool test rules), and
// dashboard queries that parse and name metrics the code defines.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { chartDir, renderChart } from '../../../src/install/helm.js';
import { find, parseObjects, repoRoot } from './support.js';

const run = promisify(execFile);
const promtool = '/usr/bin/promtool';
const ns = 'gantry-system';
const agentNs = 'gantry-system-agent';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-monitoring-'));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}

async function promtoolRun(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(promtool, args, { cwd: work });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      out: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    };
  }
}

/** Metric names an expression selects (every selector in the chart's queries has braces). */
function metricsIn(expr: string): string[] {
  const names = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1]!);
  return names.filter((n) => n !== 'up').map((n) => n.replace(/_(bucket|count|sum)$/, ''));
}

/** Every metric the code registers (prom-client `name: '...'`). */
function definedMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (file.endsWith('.ts')) {
        for (const m of fs.readFileSync(file, 'utf8').matchAll(/\bname: '([a-z_:][a-z0-9_:]*)'/g))
          names.add(m[1]!);
      }
    }
  };
  walk(path.join(repoRoot, 'src'));
  return names;
}

let groups: RuleGroup[] = [];
let dashboard: { panels: { type: string; title: string; targets?: { expr: string }[] }[] };

describe('alerts and dashboard', () => {
  before(async () => {
    const rendered = await renderChart({
      namespace: ns,
      set: ['metrics.prometheusRule.enabled=true', 'metrics.dashboard.enabled=true'],
      showOnly: ['templates/prometheusrule.yaml', 'templates/dashboard-configmap.yaml'],
    });
    const objects = await parseObjects(rendered);
    groups = (find(objects, 'PrometheusRule').spec as { groups: RuleGroup[] }).groups;
    // A rules file is the PrometheusRule's spec; JSON is YAML to promtool.
    fs.writeFileSync(path.join(work, 'rules.json'), JSON.stringify({ groups }));
    const cm = find(objects, 'ConfigMap') as unknown as { data: Record<string, string> };
    dashboard = JSON.parse(cm.data['gantry.json']!) as typeof dashboard;
  });

  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('ships rules that promtool check rules accepts', async () => {
    const r = await promtoolRun(['check', 'rules', 'rules.json']);
    assert.equal(r.code, 0, r.out);
    const alerts = groups.flatMap((g) => g.rules).filter((rule) => rule.alert);
    assert.match(r.out, new RegExp(`SUCCESS: ${alerts.length} rules found`));
    for (const rule of alerts) {
      assert.ok(rule.labels?.severity, `${rule.alert} has no severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert} lacks annotations`);
    }
  });

  it('fires the alerts on the series the processes export (promtool test rules)', async () => {
    const rule = (name: string) => groups.flatMap((g) => g.rules).find((r) => r.alert === name)!;
    // The annotations as Prometheus renders them for these labels ($labels only, no $value).
    const annotations = (name: string, labels: Record<string, string>) =>
      Object.fromEntries(
        Object.entries(rule(name).annotations ?? {}).map(([k, v]) => {
          const text = v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '');
          assert.doesNotMatch(text, /\{\{/, `${name}.${k} uses more than $labels`);
          return [k, text];
        }),
      );
    const controller = `namespace="${ns}",pod="gantry-controller-1",container="controller"`;
    const agent = `namespace="${agentNs}",pod="gantry-agent-x",container="agent",node="worker-1"`;
    const tests = {
      rule_files: ['rules.json'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            // The agent is refused a request every few seconds for 30 minutes.
            {
              series: `rest_client_requests_total{${agent},code="403",method="GET",host="api"}`,
              values: '0+20x30',
            },
            {
              series: `rest_client_requests_total{${controller},code="200",method="GET",host="api"}`,
              values: '0+20x30',
            },
            // Both replicas stand by: nobody leads.
            {
              series: `leader_election_master_status{${controller},name="gantry-controller"}`,
              values: '0x30',
            },
            { series: `up{${agent}}`, values: '0x30' },
            { series: `gantry_agent_fenced{${agent}}`, values: '1x30' },
          ],
          alert_rule_test: [
            {
              eval_time: '25m',
              alertname: 'GantryRequestsForbidden',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', namespace: agentNs, pod: 'gantry-agent-x' },
                  exp_annotations: annotations('GantryRequestsForbidden', { pod: 'gantry-agent-x' }),
                },
              ],
            },
            {
              eval_time: '25m',
              alertname: 'GantryControllerNoLeader',
              exp_alerts: [
                {
                  exp_labels: { severity: 'critical' },
                  exp_annotations: annotations('GantryControllerNoLeader', {}),
                },
              ],
            },
            {
              eval_time: '25m',
              alertname: 'GantryAgentDown',
              exp_alerts: [
                {
                  exp_labels: {
                    severity: 'critical',
                    namespace: agentNs,
                    pod: 'gantry-agent-x',
                    container: 'agent',
                    node: 'worker-1',
                  },
                  exp_annotations: annotations('GantryAgentDown', { node: 'worker-1' }),
                },
              ],
            },
            {
              eval_time: '25m',
              alertname: 'GantryHostFenced',
              exp_alerts: [
                {
                  exp_labels: {
                    severity: 'warning',
                    namespace: agentNs,
                    pod: 'gantry-agent-x',
                    container: 'agent',
                    node: 'worker-1',
                  },
                  exp_annotations: annotations('GantryHostFenced', { node: 'worker-1' }),
                },
              ],
            },
            // Not yet: each alert waits its `for`.
            { eval_time: '3m', alertname: 'GantryAgentDown', exp_alerts: [] },
          ],
        },
        {
          interval: '1m',
          input_series: [
            {
              series: `rest_client_requests_total{${agent},code="200",method="GET",host="api"}`,
              values: '0+20x30',
            },
            {
              series: `leader_election_master_status{${controller},name="gantry-controller"}`,
              values: '1x30',
            },
            { series: `up{${agent}}`, values: '1x30' },
            { series: `gantry_agent_fenced{${agent}}`, values: '0x30' },
            { series: `up{${controller},job="gantry-controller-metrics"}`, values: '1x30' },
          ],
          // A healthy installation is quiet.
          alert_rule_test: groups
            .flatMap((g) => g.rules)
            .filter((r) => r.alert)
            .map((r) => ({ eval_time: '25m', alertname: r.alert, exp_alerts: [] })),
        },
      ],
    };
    fs.writeFileSync(path.join(work, 'tests.json'), JSON.stringify(tests));
    const r = await promtoolRun(['test', 'rules', 'tests.json']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  it('has dashboard queries that parse, on the metrics it promises', async () => {
    const exprs = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
    );
    assert.ok(exprs.length >= 15);
    // As recording rules, promtool parses every query (Grafana's variables filled in).
    const rules = exprs.map(({ expr }, i) => ({
      record: `gantry:dashboard_query_${i}`,
      expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', '.*'),
    }));
    fs.writeFileSync(
      path.join(work, 'dashboard-rules.json'),
      JSON.stringify({ groups: [{ name: 'dashboard', rules }] }),
    );
    const r = await promtoolRun(['check', 'rules', 'dashboard-rules.json']);
    assert.equal(r.code, 0, r.out);
    const used = new Set(exprs.flatMap(({ expr }) => metricsIn(expr)));
    for (const metric of [
      'controller_runtime_reconcile_total',
      'controller_runtime_reconcile_errors_total',
      'workqueue_depth',
      'gantry_container_start_duration_seconds',
      'gantry_image_pull_duration_seconds',
      'gantry_migrations_total',
      'gantry_migration_downtime_seconds',
    ]) {
      assert.ok(used.has(metric), `the dashboard shows nothing of ${metric}`);
    }
  });

  it('names only metrics the code defines', () => {
    const defined = definedMetrics();
    const exprs = [
      ...groups.flatMap((g) => g.rules.map((r) => r.expr)),
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr)),
    ];
    const unknown = [...new Set(exprs.flatMap(metricsIn))].filter((m) => !defined.has(m));
    assert.deepEqual(unknown, [], 'the alerts or the dashboard name metrics nothing exports');
  });

  it('keeps the dashboard JSON a file of the chart (Grafana legends are not Helm templates)', () => {
    const file = fs.readFileSync(path.join(chartDir, 'files/dashboards/gantry.json'), 'utf8');
    assert.deepEqual(JSON.parse(file), dashboard);
  });
});
