// The decision corpus (core/tests/cases/vertical_slice.json, format in its README) through the
// package: every case with a minted token, its claims taken as verified, must get the decision
// the filter gets with the signed token. This is what shows the package runs the filter's logic.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explain, readJson, substituteJwks } from './helpers.mjs';

const FILE = ['core', 'tests', 'cases', 'vertical_slice.json'];

// Minted-token cases whose expected outcome comes from the signature, the JOSE header or where
// the token sits in the request: a claims preview has none of these, by design.
const SKIPPED = new Map([
  ['unknown kid', 'the header names a kid the JWKS lacks (key selection)'],
  ['no kid: keys of the matching type are tried', 'the header has no kid (key selection)'],
  ['PS256 on an RS256-pinned key', 'algorithm pinning is checked against the signing key'],
  ['HS256 claiming the RSA key id', 'the header claims another key (algorithm confusion)'],
  ['alg none', 'unsigned token'],
  ['tampered signature', 'signature check'],
  ['repeated authorization header', 'the token appears twice in the request'],
  ['buildkite token in Authorization: not where that provider reads', 'token location (from_headers)'],
]);

// Decoded claims: "now+N" / "now-N" relative to the file's clock.
function relativeTimes(claims, now) {
  return Object.fromEntries(
    Object.entries(claims).map(([name, value]) => {
      const m = typeof value === 'string' && /^now([+-])(\d+)$/.exec(value);
      return [name, m ? now + (m[1] === '+' ? 1 : -1) * Number(m[2]) : value];
    }),
  );
}

// Identity headers the filter sets on an allowed request, read from an explanation instead.
const IDENTITY = {
  'x-meshgate-subject': (e) => e.principal?.subject,
  'x-meshgate-groups': (e) => e.principal?.groups.join(','),
  'x-meshgate-provider': (e) => e.principal?.provider,
  'x-meshgate-email': (e) => e.principal?.email,
  'x-meshgate-rule': (e) => e.rule_id,
};

test('vertical_slice corpus: claims previews decide as the filter does', (t) => {
  const corpus = readJson(...FILE);
  const config = substituteJwks(corpus.config);
  const ran = [];
  const skipped = [];
  const failures = [];
  for (const c of corpus.cases) {
    const token = c.token;
    if (token === undefined || typeof token === 'string') {
      skipped.push(`${c.description}: ${token === undefined ? 'no token' : 'raw token string'} (not a minted token)`);
      continue;
    }
    if (SKIPPED.has(c.description)) {
      skipped.push(`${c.description}: ${SKIPPED.get(c.description)}`);
      continue;
    }
    const request = { method: c.request.method, host: c.request.host, path: c.request.path, now: corpus.now };
    if (c.request.headers) request.headers = c.request.headers;
    const e = explain(config, relativeTimes(token.claims, corpus.now), request);
    ran.push(c.description);
    const problems = [];
    const { expect } = c;
    if (e.decision !== expect.decision || e.code !== expect.code) {
      problems.push(`got ${e.decision}/${e.code} (${e.reason}), want ${expect.decision}/${expect.code}`);
    }
    if (e.status !== expect.status) problems.push(`status ${e.status}, want ${expect.status}`);
    if (expect.rule_id !== undefined && e.rule_id !== expect.rule_id) {
      problems.push(`rule ${e.rule_id}, want ${expect.rule_id}`);
    }
    for (const [header, want] of Object.entries(expect.headers ?? {})) {
      const read = IDENTITY[header];
      if (read && read(e) !== want) problems.push(`${header} would be ${read(e)}, want ${want}`);
    }
    // The deciding rule is marked as such in the trace.
    if (e.rule_id !== null && e.rules.length > 0) {
      const decided = e.rules.filter((r) => r.outcome === 'decided').map((r) => r.id);
      if (decided.length !== 1 || decided[0] !== e.rule_id) problems.push(`decided rules ${decided}`);
    }
    if (problems.length) failures.push(`${c.description}: ${problems.join('; ')}`);
  }

  // The skip list must name cases that exist, so it can't silently outlive them.
  const descriptions = new Set(corpus.cases.map((c) => c.description));
  const stale = [...SKIPPED.keys()].filter((d) => !descriptions.has(d));
  assert.deepEqual(stale, [], 'SKIPPED names cases the corpus no longer has');

  t.diagnostic(`ran ${ran.length} of ${corpus.cases.length} cases; skipped ${skipped.length}:`);
  for (const s of skipped) t.diagnostic(`  skipped: ${s}`);
  assert.deepEqual(failures, []);
  assert.equal(ran.length + skipped.length, corpus.cases.length);
  assert.ok(ran.length >= 50, `only ${ran.length} cases ran`);
});
