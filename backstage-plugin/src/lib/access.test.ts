import { Entity } from '@backstage/catalog-model';
import { AccessGrant, AccessPolicy, RequestableEntry } from '../api/types';
import {
  checkRequest,
  entityOwners,
  entityTargets,
  findEntry,
  parseDuration,
  timeLeft,
  verdictFor,
} from './access';

const dag: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'etl',
    annotations: { 'meshgate.io/airflow-dag': 'etl_daily, etl_hourly', other: 'x' },
  },
  spec: { owner: 'data-eng', type: 'service' },
};

describe('parseDuration', () => {
  it.each([
    ['15m', 900],
    ['1h30m', 5400],
    ['1d', 86400],
    ['90s', 90],
    ['8h', 28800],
    ['PT1H', 3600],
    ['PT15M', 900],
    ['P1D', 86400],
    ['P1DT12H', 129600],
    ['0m', 0],
    ['', undefined],
    ['15', undefined],
    ['1w', undefined],
    ['30m1h', undefined],
    ['1.5h', undefined],
    ['-1h', undefined],
    ['P', undefined],
    ['PT', undefined],
  ])('%p -> %p', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });
});

const entry: RequestableEntry = {
  name: 'airflow-dags',
  target: { resource: { kind: 'airflow.dag' } },
  max_duration: '1h',
  max_duration_s: 3600,
  reason: 'required',
  approvals: 1,
  approvers: 'owners',
};

describe('checkRequest', () => {
  it.each([
    ['15m', 'backfill', {}],
    ['1h', 'backfill', {}],
    ['2h', 'backfill', { duration: 'at most 1h for airflow-dags' }],
    ['0m', 'backfill', { duration: 'the duration must be more than 0' }],
    ['soon', 'backfill', { duration: '`soon` is not a duration (15m, 1h30m, 1d or PT1H)' }],
    ['15m', '   ', { reason: 'a reason is required' }],
    ['15m', 'x'.repeat(1001), { reason: 'at most 1000 characters' }],
  ])('%p %p', (duration, reason, problems) => {
    expect(checkRequest(entry, duration, reason)).toEqual(problems);
  });

  it('lets an optional reason be empty', () => {
    expect(checkRequest({ ...entry, reason: 'optional' }, '15m', '')).toEqual({});
  });
});

describe('entity facts', () => {
  it('reads every annotated resource', () => {
    expect(entityTargets(dag)).toEqual([
      { resource: { kind: 'airflow.dag', id: 'etl_daily' } },
      { resource: { kind: 'airflow.dag', id: 'etl_hourly' } },
    ]);
  });
  it('uses a custom annotation map', () => {
    expect(entityTargets(dag, { other: 'service.host' })).toEqual([
      { resource: { kind: 'service.host', id: 'x' } },
    ]);
  });
  it('treats a group entity as a group target', () => {
    expect(
      entityTargets({ ...dag, kind: 'Group', metadata: { name: 'data-eng', namespace: 'default' } }),
    ).toEqual([{ group: 'group:default/data-eng' }]);
  });
  it('finds no target on an entity without annotations', () => {
    expect(entityTargets({ ...dag, metadata: { name: 'plain' } })).toEqual([]);
  });
  it('takes owners from relations, else spec.owner', () => {
    expect(entityOwners(dag)).toEqual(['group:default/data-eng']);
    expect(
      entityOwners({
        ...dag,
        relations: [{ type: 'ownedBy', targetRef: 'group:default/Platform' }],
      }),
    ).toEqual(['group:default/platform']);
  });
});

describe('findEntry', () => {
  const policy: AccessPolicy = {
    requestable: [
      { ...entry, name: 'one-dag', target: { resource: { kind: 'airflow.dag', id: 'etl_hourly' } } },
      entry,
      { ...entry, name: 'data-eng', target: { group: 'group:default/data-eng' } },
    ],
  };
  it.each([
    [{ resource: { kind: 'airflow.dag', id: 'etl_hourly' } }, 'one-dag'],
    [{ resource: { kind: 'airflow.dag', id: 'etl_daily' } }, 'airflow-dags'],
    [{ group: 'group:default/Data-Eng' }, 'data-eng'],
    [{ group: 'group:default/other' }, undefined],
    [{ resource: { kind: 'buildkite.pipeline', id: 'x' } }, undefined],
  ])('%j -> %p', (target, name) => {
    expect(findEntry(policy, target)?.name).toBe(name);
  });
});

describe('verdictFor', () => {
  const target = { resource: { kind: 'airflow.dag', id: 'etl_daily' } };
  const now = 1_000_000;
  const grant: AccessGrant = {
    id: 'g1',
    request_id: 'r1',
    user: 'user:default/carol',
    target,
    not_before_ms: now - 1000,
    not_after_ms: now + 15 * 60_000,
  };
  const base = {
    target,
    owners: ['group:default/data-eng'],
    ownershipRefs: ['user:default/carol', 'group:default/analysts'],
    grants: [] as AccessGrant[],
    requests: [],
    nowMs: now,
  };
  it('denies a non-owner without a grant, naming the owners', () => {
    const v = verdictFor(base);
    expect(v.allowed).toBe(false);
    expect(v.why).toContain('owned by group:default/data-eng');
    expect(v.why).toContain('hold no grant');
  });
  it('allows an owner', () => {
    const v = verdictFor({ ...base, ownershipRefs: ['group:default/Data-Eng'] });
    expect(v.allowed).toBe(true);
    expect(v.why).toContain('which owns it');
  });
  it('allows through an active grant, with time left', () => {
    const v = verdictFor({ ...base, grants: [grant] });
    expect(v.allowed).toBe(true);
    expect(v.why).toContain('grant g1 (15m left)');
  });
  it.each([
    ['expired', { not_after_ms: now }],
    ['revoked', { revoked_at_ms: now - 1 }],
    ['other target', { target: { resource: { kind: 'airflow.dag', id: 'x' } } }],
  ])('ignores a grant that is %s', (_, change) => {
    expect(verdictFor({ ...base, grants: [{ ...grant, ...change }] }).allowed).toBe(false);
  });
  it('mentions a pending request', () => {
    const v = verdictFor({
      ...base,
      requests: [
        {
          id: 'r9', requester: 'user:default/carol', target, entry: 'airflow-dags',
          duration: '15m', duration_s: 900, reason: 'x', state: 'pending', created_at_ms: now,
        },
      ],
    });
    expect(v.pending?.id).toBe('r9');
    expect(v.why).toContain('r9 is waiting for approval');
  });
});

describe('timeLeft', () => {
  it.each([
    [0, 'expired'],
    [-5, 'expired'],
    [40_000, '40s left'],
    [14 * 60_000 + 5_000, '14m left'],
    [65 * 60_000, '1h 5m left'],
    [26 * 3600_000, '1d 2h left'],
  ])('%p ms -> %p', (delta, text) => {
    expect(timeLeft(1000 + delta, 1000)).toBe(text);
  });
});
