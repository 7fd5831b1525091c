import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  MeshgateError,
  NOW,
  claims,
  config,
  explain,
  packageDir,
  rule,
  validate,
  version,
} from './helpers.mjs';

const at = (request) => ({ now: NOW, ...request });

describe('explain', () => {
  test('an allowed request: the deciding rule, the caller and its groups', () => {
    const e = explain(
      config,
      claims({ groups: ['data-eng', 'ops', 'data-eng'] }),
      at({ method: 'get', url: 'https://Airflow.Internal:8443/api/v1/dags?limit=5' }),
    );
    assert.equal(e.decision, 'allow');
    assert.equal(e.code, 'rule_allowed');
    assert.equal(e.status, 200);
    assert.equal(e.rule_id, 'airflow-read');
    assert.equal(e.mode, 'enforce');
    assert.equal(e.shadow, null);
    assert.deepEqual(e.request, { method: 'GET', host: 'airflow.internal', path: '/api/v1/dags' });
    assert.deepEqual(e.principal, {
      provider: 'okta',
      subject: 'alice',
      email: 'alice@example.com',
      groups: ['data-eng', 'ops'],
    });
    assert.equal(rule(e, 'airflow-read').outcome, 'decided');
    assert.equal(rule(e, 'airflow-trigger').outcome, 'not_matched');
    assert.match(rule(e, 'airflow-trigger').detail, /method `GET` is not one of \[`POST`\]/);
    // Deny rules first, then allow rules, in configuration order.
    assert.deepEqual(
      e.rules.map((r) => r.id),
      ['block-admin', 'contractors-read-only', 'health', 'airflow-read', 'airflow-trigger'],
    );
  });

  test('a denied request: no_rule_matched, with the `when` that failed', () => {
    const e = explain(
      config,
      claims({ groups: ['data-analysts'] }),
      at({ method: 'POST', host: 'airflow.internal', path: '/api/v1/dags/etl_daily/dagRuns' }),
    );
    assert.equal(e.decision, 'deny');
    assert.equal(e.code, 'no_rule_matched');
    assert.equal(e.status, 403);
    assert.equal(e.rule_id, null);
    assert.ok(e.rules.every((r) => r.outcome === 'not_matched'), JSON.stringify(e.rules));
    const trigger = rule(e, 'airflow-trigger');
    assert.match(trigger.detail, /caller is in none of groups_any \[`data-eng`\]/);
    assert.match(trigger.detail, /token groups: \[`data-analysts`\]/);
  });

  test('a deny rule beats a matching allow rule', () => {
    const e = explain(
      config,
      claims({ groups: ['data-eng', 'contractors'] }),
      at({ method: 'POST', url: 'https://airflow.internal/api/v1/dags/etl_daily/dagRuns' }),
    );
    assert.equal(e.code, 'rule_denied');
    assert.equal(e.status, 403);
    assert.equal(e.rule_id, 'contractors-read-only');
    assert.equal(rule(e, 'contractors-read-only').outcome, 'decided');
    assert.equal(rule(e, 'airflow-trigger').outcome, 'matched');
  });

  test('an expired token: token_expired, no caller, rules that need one say so', () => {
    const e = explain(
      config,
      claims({ exp: NOW - 3600 }),
      at({ method: 'GET', url: 'https://airflow.internal/api/v1/dags' }),
    );
    assert.equal(e.code, 'token_expired');
    assert.equal(e.status, 401);
    assert.equal(e.principal, null);
    assert.match(e.reason, /expired/);
    assert.equal(rule(e, 'airflow-read').outcome, 'needs_caller');
  });

  test('`now` defaults to the current time and may be a Date', () => {
    const request = { method: 'GET', url: 'https://airflow.internal/api/v1/dags' };
    // Claims valid around NOW (2023) are long expired by the real clock.
    assert.equal(explain(config, claims(), request).code, 'token_expired');
    const current = Math.floor(Date.now() / 1000);
    const fresh = claims({ iat: current - 10, exp: current + 600 });
    assert.equal(explain(config, fresh, request).code, 'rule_allowed');
    assert.equal(explain(config, claims(), { ...request, now: new Date(NOW * 1000) }).code, 'rule_allowed');
  });

  test('`url` may be a URL object (whose path WHATWG parsing already normalized)', () => {
    const url = new URL('https://airflow.internal/x/../api/v1/dags');
    assert.equal(url.pathname, '/api/v1/dags');
    const e = explain(config, claims(), at({ method: 'GET', url }));
    assert.equal(e.code, 'rule_allowed');
    assert.equal(explain(config, claims(), at({ method: 'GET', url: { href: url.href } })).code, 'rule_allowed');
  });

  test('an unknown issuer', () => {
    const e = explain(config, claims({ iss: 'https://evil.example' }), at({ method: 'GET', url: 'https://airflow.internal/api/v1/dags' }));
    assert.equal(e.code, 'issuer_unknown');
    assert.equal(e.status, 401);
    assert.match(e.reason, /evil\.example/);
  });

  test('path tricks are normalized or rejected exactly as in the filter', () => {
    const dotted = explain(config, claims(), at({ method: 'GET', url: 'https://airflow.internal/x/../admin/users' }));
    assert.equal(dotted.code, 'rule_denied');
    assert.equal(dotted.rule_id, 'block-admin');
    assert.equal(dotted.request.path, '/admin/users');
    for (const path of ['//admin/users', '/%61dmin/users', '/%2e%2e/admin/users']) {
      const e = explain(config, claims(), at({ method: 'GET', host: 'airflow.internal', path }));
      assert.equal(e.rule_id, 'block-admin', path);
    }

    const slash = explain(config, claims(), at({ method: 'GET', url: 'https://airflow.internal/admin%2Fusers' }));
    assert.equal(slash.code, 'path_rejected');
    assert.equal(slash.status, 400);
    assert.equal(slash.request.path, null);
    assert.deepEqual(slash.rules, []);
    assert.match(slash.reason, /%2F/);
  });

  test('public routes need no caller', () => {
    const e = explain(config, {}, at({ method: 'GET', url: 'http://anything.internal/health' }));
    assert.equal(e.code, 'public_route');
    assert.equal(e.rule_id, 'health');
  });

  test('shadow mode: the decision, and that the filter lets the request through', () => {
    const shadowed = { ...config, mode_overrides: [{ hosts: ['airflow.internal'], mode: 'shadow' }] };
    const e = explain(shadowed, claims({ groups: [] }), at({ method: 'GET', url: 'https://airflow.internal/api/v1/dags' }));
    assert.equal(e.code, 'no_rule_matched');
    assert.equal(e.mode, 'shadow');
  });

  test('strings are taken as JSON', () => {
    const e = explain(
      JSON.stringify(config),
      JSON.stringify(claims()),
      JSON.stringify(at({ method: 'GET', url: 'https://airflow.internal/api/v1/dags' })),
    );
    assert.equal(e.code, 'rule_allowed');
  });
});

describe('errors', () => {
  const request = at({ method: 'GET', url: 'https://airflow.internal/api/v1/dags' });

  function thrown(fn) {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof MeshgateError, `not a MeshgateError: ${e}`);
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'MeshgateError');
      assert.equal(e.message, `${e.kind}: \`${e.path}\`: ${e.reason}`);
      return e;
    }
    assert.fail('did not throw');
  }

  test('a bad config names the field', () => {
    const bad = { ...config, rules: [{ id: 'x', action: 'allow', paths: ['/api/{'] }] };
    const e = thrown(() => explain(bad, claims(), request));
    assert.equal(e.kind, 'config');
    assert.equal(e.path, 'rules[0].paths[0]');
    assert.ok(e.reason.length > 0);

    const unknown = thrown(() => explain({ rules: [{ id: 'x', action: 'allow', hots: [] }] }, claims(), request));
    assert.deepEqual([unknown.kind, unknown.path], ['config', 'rules[0].hots']);
    assert.match(unknown.reason, /unknown field `hots`/);

    assert.equal(thrown(() => explain('{', claims(), request)).kind, 'config');
  });

  test('bad claims', () => {
    for (const bad of [[], 'null', '{"iss": "a", "iss": "b"}', 'nope', 42]) {
      const e = thrown(() => explain(config, bad, request));
      assert.deepEqual([e.kind, e.path], ['claims', '(root)'], String(bad));
    }
    assert.match(thrown(() => explain(config, '{"iss": "a", "iss": "b"}', request)).reason, /duplicate claim `iss`/);
    const cyclic = {};
    cyclic.self = cyclic;
    assert.equal(thrown(() => explain(config, cyclic, request)).kind, 'claims');
    assert.equal(thrown(() => explain(config, undefined, request)).kind, 'claims');
  });

  test('bad requests', () => {
    const cases = [
      [{ url: 'https://h/' }, 'method'],
      [{ method: 'GET' }, '(root)'],
      [{ method: 'GET', url: 'ftp://h/' }, 'url'],
      [{ method: 'GET', url: '/relative' }, 'url'],
      [{ method: 'GET', url: 'https://h/', host: 'h' }, 'url'],
      [{ method: 'GET', host: 'h' }, 'path'],
      [{ method: 'GET', url: 'https://h/', headers: { 'x-a': 1 } }, 'headers.x-a'],
      [{ method: 'GET', url: 'https://h/', now: 'later' }, 'now'],
      [{ method: 'GET', url: 'https://h/', extra: true }, 'extra'],
    ];
    for (const [bad, path] of cases) {
      const e = thrown(() => explain(config, claims(), bad));
      assert.deepEqual([e.kind, e.path], ['request', path], JSON.stringify(bad));
    }
  });

  test('no input makes meshgate throw anything but a MeshgateError', () => {
    const nested = '['.repeat(100_000) + ']'.repeat(100_000);
    const inputs = [
      [config, nested, request],
      [nested, claims(), request],
      [config, claims(), nested],
      [config, claims({ groups: Array.from({ length: 5000 }, (_, i) => `g${i}`) }), request],
      [config, claims({ exp: 1e308, iat: -1e308, nbf: Number.MAX_SAFE_INTEGER }), request],
      [config, claims({ exp: -Number.MAX_VALUE }), request],
      [config, claims(), { method: 'GET', url: 'https://h/' + 'a/'.repeat(10_000) }],
      [config, claims(), { method: 'GET', url: 'https://ü.example/\u0000' }],
      [config, claims(), { method: 'GET', host: '[::1]:80', path: '' }],
      [config, claims(), { method: 'GET', url: 'https://h/', now: Number.MAX_SAFE_INTEGER }],
      [config, claims(), { method: 'GET', url: 'https://h/', now: -Number.MAX_SAFE_INTEGER }],
      [config, claims(), { method: 'GET', url: 'https://h/', now: NaN }],
      [{ providers: { p: { issuer: 'https://example.okta.com/oauth2/default', clock_skew_s: 3600, max_lifetime_s: 1 } } }, claims({ exp: 1e300 }), request],
      ['\uFEFF{}', '{}', '{}'],
    ];
    for (const [c, k, r] of inputs) {
      try {
        const e = explain(c, k, r);
        assert.ok(['allow', 'deny'].includes(e.decision));
      } catch (e) {
        assert.ok(e instanceof MeshgateError && e.kind !== 'internal', String(e));
      }
    }
    // And the module still works afterwards.
    assert.equal(explain(config, claims(), request).code, 'rule_allowed');
  });
});

describe('validate', () => {
  test('ok: counts providers and rules', () => {
    assert.deepEqual(validate(config), { ok: true, providers: 1, rules: 5 });
    assert.deepEqual(validate('{}'), { ok: true, providers: 0, rules: 0 });
  });

  test('an error names the field', () => {
    const result = validate({ ...config, rules: [{ id: 'x', action: 'allow', paths: ['/api/{'] }] });
    assert.equal(result.ok, false);
    assert.equal(result.path, 'rules[0].paths[0]');
    assert.ok(result.message.length > 0);
    const duplicate = validate({ ...config, rules: [config.rules[0], config.rules[0]] });
    assert.deepEqual([duplicate.ok, duplicate.path], [false, 'rules[1].id']);
    assert.deepEqual(validate('not json').ok, false);
    assert.deepEqual(validate(undefined), { ok: false, path: '(root)', message: 'expected an object, got undefined' });
  });
});

test('version matches package.json', () => {
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  assert.equal(version(), pkg.version);
  assert.match(version(), /^\d+\.\d+\.\d+/);
  assert.equal(pkg.name, '@meshgate/policy');
});
