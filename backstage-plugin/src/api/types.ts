/**
 * The control plane's access API (docs/openapi/access.yaml), as the plugin reads it.
 * Times are Unix milliseconds, as the API writes them (`*_ms`).
 */

/** What a request or grant is for: membership of a group, or ownership of one resource. */
export type AccessTarget =
  | { group: string }
  | { resource: { kind: string; id: string } };

export type RequestState =
  | 'pending'
  | 'approved'
  | 'denied'
  | 'cancelled'
  | 'expired';

export interface AccessReview {
  reviewer: string;
  verdict: 'approve' | 'deny' | string;
  comment: string;
  at_ms: number;
}

export interface AccessGrant {
  id: string;
  request_id: string;
  user: string;
  target: AccessTarget;
  not_before_ms: number;
  not_after_ms: number;
  revoked_at_ms?: number | null;
  revoked_by?: string | null;
}

export interface AccessRequest {
  id: string;
  requester: string;
  target: AccessTarget;
  entry: string;
  duration: string;
  duration_s: number;
  reason: string;
  state: RequestState;
  created_at_ms: number;
  decided_at_ms?: number | null;
  reviews?: AccessReview[];
  grant?: AccessGrant | null;
  auto_approved?: { condition: string } | null;
}

/** One requestable entry of the access policy (`GET /v1/access/policy`). */
export interface RequestableEntry {
  name: string;
  /** `resource.id` absent: every resource of the kind. */
  target: { group: string } | { resource: { kind: string; id?: string | null } };
  requesters?: string[] | null;
  max_duration: string;
  max_duration_s: number;
  reason: 'required' | 'optional';
  approvals: number;
  approvers: 'owners' | string[];
  auto_approve?: string[];
}

export interface AccessPolicy {
  requestable: RequestableEntry[];
}

export interface NewAccessRequest {
  target: AccessTarget;
  /** `15m`, `1h30m`, ... as the policy writes durations. */
  duration: string;
  reason?: string;
}

export type RequestListFilter = 'mine' | 'pending_for_me' | 'all';
export type GrantListFilter = 'mine' | 'visible';

/** The client the components use; tests give them a fake. */
export interface MeshgateAccessApi {
  getPolicy(): Promise<AccessPolicy>;
  listRequests(filter: RequestListFilter): Promise<AccessRequest[]>;
  getRequest(id: string): Promise<AccessRequest>;
  createRequest(request: NewAccessRequest): Promise<AccessRequest>;
  approve(id: string, comment?: string): Promise<AccessRequest>;
  deny(id: string, comment?: string): Promise<AccessRequest>;
  cancel(id: string): Promise<AccessRequest>;
  listGrants(filter: GrantListFilter): Promise<AccessGrant[]>;
  revokeGrant(id: string, comment?: string): Promise<AccessGrant>;
}
