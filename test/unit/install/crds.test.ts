// The Helm chart's CRD templates: current with the zod schemas, and below `spec:` the same text as
// crds/ (the integration test renders them with helm and compares again).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { renderCrds } from '../../../src/api/v1alpha1/crd.js';
import { chartCrdDir, escapeTemplate, renderChartCrds } from '../../../src/install/crds.js';

describe('chart CRD templates', () => {
  it('are what `npm run gen:crds` writes now', () => {
    const want = renderChartCrds();
    const have = fs.readdirSync(chartCrdDir).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(have.sort(), [...want.keys()].sort(), 'run `npm run gen:crds`');
    for (const [name, content] of want) {
      const current = fs.readFileSync(path.join(chartCrdDir, name), 'utf8') === content;
      assert.ok(current, `charts/gantry/templates/crds/${name} is stale: run \`npm run gen:crds\``);
    }
  });

  it('carry the spec of crds/ unchanged, behind crds.enabled, kept with crds.keep', () => {
    const chart = renderChartCrds();
    for (const [name, crd] of renderCrds()) {
      const template = chart.get(name)!;
      assert.ok(template.startsWith('{{- if .Values.crds.enabled }}\n'));
      assert.ok(template.endsWith('{{- end }}\n'));
      assert.match(
        template,
        /\{\{- if \.Values\.crds\.keep \}\}\n {2}annotations:\n {4}helm\.sh\/resource-policy: keep\n/,
      );
      const templateSpec = template.slice(template.indexOf('\nspec:\n'), template.lastIndexOf('{{- end }}'));
      assert.equal(templateSpec, crd.slice(crd.indexOf('\nspec:\n')), `${name}: the spec differs from crds/`);
    }
  });

  it('escapes what Go templates would read as an action', () => {
    assert.equal(escapeTemplate('rule: "{{x}}"'), 'rule: "{{ "{{" }}x}}"');
    assert.equal(escapeTemplate('no braces'), 'no braces');
  });
});
