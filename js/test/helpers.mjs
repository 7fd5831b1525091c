// Shared by the tests: the built package (dist/npm, or $MESHGATE_POLICY_DIR) and fixtures.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const packageDir = resolve(process.env.MESHGATE_POLICY_DIR ?? join(repo, 'dist', 'npm'));

// The package is CommonJS; Node's ESM loader exposes its named exports.
const pkg = await import(pathToFileURL(join(packageDir, 'index.js')).href).catch((e) => {
  throw new Error(`cannot load @meshgate/policy from ${packageDir} (run \`bash scripts/js.sh build\`): ${e.message}`);
});
export const { explain, validate, version, MeshgateError } = pkg;

export function readJson(...parts) {
  return JSON.parse(readFileSync(join(repo, ...parts), 'utf8'));
}

// The corpus's `$JWKS`: the public halves of testdata/keys (as test-support/src/keys.rs `corpus_jwks` builds it).
export function testJwks() {
  const publicJwk = (file, kid, alg) => {
    const jwk = readJson('testdata', 'keys', file);
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) delete jwk[member];
    return { ...jwk, kid, alg };
  };
  return {
    keys: [
      publicJwk('rsa.json', 'rsa', 'RS256'),
      publicJwk('ec.json', 'ec', 'ES256'),
      publicJwk('ed25519.json', 'ed', 'EdDSA'),
      { ...readJson('testdata', 'keys', 'hs.json'), alg: 'HS256', kid: 'hs' },
    ],
  };
}

// Replaces every "$JWKS" string in a value.
export function substituteJwks(value, jwks = testJwks()) {
  if (value === '$JWKS') return jwks;
  if (Array.isArray(value)) return value.map((v) => substituteJwks(v, jwks));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteJwks(v, jwks)]));
  }
  return value;
}

// A configuration shaped like the README's: claims previews need no keys, so remote_jwks is fine.
export const NOW = 1_700_000_000;

export const config = {
  providers: {
    okta: {
      issuer: 'https://example.okta.com/oauth2/default',
      audiences: ['api://data-tools'],
      remote_jwks: { cluster: 'okta_jwks', uri: 'https://example.okta.com/oauth2/default/v1/keys' },
      claim_to_headers: [{ header_name: 'x-user-email', claim_name: 'email' }],
    },
  },
  rules: [
    { id: 'health', action: 'allow', public: true, paths: ['/health'] },
    { id: 'block-admin', action: 'deny', paths: ['/admin/**'] },
    {
      id: 'contractors-read-only',
      action: 'deny',
      methods: ['POST', 'PUT', 'PATCH', 'DELETE'],
      when: { groups_any: ['contractors'] },
    },
    {
      id: 'airflow-read',
      action: 'allow',
      hosts: ['airflow.internal'],
      methods: ['GET'],
      paths: ['/api/v1/dags', '/api/v1/dags/{dag_id}/dagRuns'],
      when: { groups_any: ['data-eng', 'data-analysts'] },
    },
    {
      id: 'airflow-trigger',
      action: 'allow',
      hosts: ['airflow.internal'],
      methods: ['POST'],
      paths: ['/api/v1/dags/{dag_id}/dagRuns'],
      when: { groups_any: ['data-eng'] },
    },
  ],
};

export function claims(overrides = {}) {
  return {
    iss: 'https://example.okta.com/oauth2/default',
    sub: 'alice',
    aud: 'api://data-tools',
    email: 'alice@example.com',
    iat: NOW - 10,
    exp: NOW + 3600,
    groups: ['data-eng'],
    ...overrides,
  };
}

export function rule(explanation, id) {
  const found = explanation.rules.find((r) => r.id === id);
  if (!found) throw new Error(`no rule ${id} in ${JSON.stringify(explanation.rules)}`);
  return found;
}
