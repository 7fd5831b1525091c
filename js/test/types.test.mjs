// index.d.ts is written by hand; these checks keep it from drifting from the Rust it describes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageDir, repo } from './helpers.mjs';
import * as pkg from './helpers.mjs';

const dts = readFileSync(join(packageDir, 'index.d.ts'), 'utf8');
const rust = (...parts) => readFileSync(join(repo, ...parts), 'utf8');

test('every configuration field and enum value in core/src/policy/config/dto.rs is typed', () => {
  const dto = rust('core', 'src', 'policy', 'config', 'dto.rs');
  const missing = [];
  for (const [, name, body] of dto.matchAll(/pub struct (\w+) \{([^}]*)\}/g)) {
    for (const [, field] of body.matchAll(/^\s*pub (\w+):/gm)) {
      if (!new RegExp(`\\b${field}\\??:`).test(dts)) missing.push(`${name}.${field}`);
    }
  }
  for (const [, name, body] of dto.matchAll(/rename_all = "snake_case"\)\]\s*pub enum (\w+) \{([^}]*)\}/g)) {
    for (const [, variant] of body.matchAll(/^\s*(\w+),?\s*$/gm)) {
      const value = variant.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
      if (!dts.includes(`'${value}'`)) missing.push(`${name}::${variant} ('${value}')`);
    }
  }
  assert.deepEqual(missing, []);
});

test('every decision code and rule outcome is typed', () => {
  const source = rust('core', 'src', 'decision', 'verdict.rs') + rust('core', 'src', 'decision', 'explain.rs');
  const values = [...source.matchAll(/(?:DenyCode|AllowCode|RuleOutcome)::\w+ => "([a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(values.length >= 20, `found only ${values}`);
  assert.deepEqual(values.filter((v) => !dts.includes(`'${v}'`)), []);
});

test('index.d.ts declares exactly what index.js exports', async () => {
  const { createRequire } = await import('node:module');
  const exported = Object.keys(createRequire(import.meta.url)(join(packageDir, 'index.js'))).sort();
  const declared = [...dts.matchAll(/^export (?:declare )?(?:function|class) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, exported);
  assert.deepEqual(['MeshgateError', 'explain', 'validate', 'version'].filter((n) => !(n in pkg)), []);
});
