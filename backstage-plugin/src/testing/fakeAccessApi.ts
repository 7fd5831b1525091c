import {
  AccessGrant,
  AccessPolicy,
  AccessRequest,
  MeshgateAccessApi,
} from '../api';

export const NOW = Date.now();

export const policy: AccessPolicy = {
  requestable: [
    {
      name: 'airflow-dags',
      target: { resource: { kind: 'airflow.dag' } },
      max_duration: '1h',
      max_duration_s: 3600,
      reason: 'required',
      approvals: 1,
      approvers: 'owners',
    },
  ],
};

export function aRequest(change: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id: 'req-1',
    requester: 'user:default/carol',
    target: { resource: { kind: 'airflow.dag', id: 'etl_daily' } },
    entry: 'airflow-dags',
    duration: '15m',
    duration_s: 900,
    reason: 'backfill the 2nd',
    state: 'pending',
    created_at_ms: NOW,
    ...change,
  };
}

export function aGrant(change: Partial<AccessGrant> = {}): AccessGrant {
  return {
    id: 'grant-1',
    request_id: 'req-1',
    user: 'user:default/carol',
    target: { resource: { kind: 'airflow.dag', id: 'etl_daily' } },
    not_before_ms: NOW - 60_000,
    not_after_ms: NOW + 15 * 60_000,
    ...change,
  };
}

/** A fake control plane: every method a jest.fn with an empty, successful default. */
export function fakeAccessApi(
  overrides: Partial<MeshgateAccessApi> = {},
): jest.Mocked<MeshgateAccessApi> {
  return {
    getPolicy: jest.fn(async () => policy),
    listRequests: jest.fn(async () => []),
    getRequest: jest.fn(async () => aRequest()),
    createRequest: jest.fn(async () => aRequest()),
    approve: jest.fn(async () => aRequest({ state: 'approved' })),
    deny: jest.fn(async () => aRequest({ state: 'denied' })),
    cancel: jest.fn(async () => aRequest({ state: 'cancelled' })),
    listGrants: jest.fn(async () => []),
    revokeGrant: jest.fn(async () => aGrant({ revoked_at_ms: NOW })),
    ...overrides,
  } as jest.Mocked<MeshgateAccessApi>;
}
