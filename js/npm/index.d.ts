// Types for @meshgate/policy. The configuration types follow `core/src/config/dto.rs`
// (js/test/types.test.mjs checks that every field there appears here); the explanation
// follows `Explanation::to_json` in `core/src/explain.rs`.

// ---------------------------------------------------------------------------------------
// Plugin configuration (README "Configuring the filter")
// ---------------------------------------------------------------------------------------

export type Action = 'allow' | 'deny';
export type Mode = 'enforce' | 'shadow';
export type FailureMode = 'closed' | 'open';

/** A template (`/api/v1/dags/{dag_id}/dagRuns`, `*` one segment, trailing `/**`), or Envoy's matchers. */
export type PathMatcher = string | { exact: string } | { prefix: string };

/** `contains`: an element of an array claim, or a word of a space-separated one (`scope`). */
export type ClaimCondition =
  | { claim: string; equals: unknown; contains?: never }
  | { claim: string; contains: unknown; equals?: never };

/** Conditions on the caller; all must hold. */
export interface When {
  groups_any?: string[];
  groups_all?: string[];
  subjects?: string[];
  /** Provider names (keys of `providers`). */
  providers?: string[];
  claims?: ClaimCondition[];
  /** The caller's groups own the catalog resource named by the path (needs a snapshot). */
  owns?: Ownership;
}

/** `{kind: 'airflow.dag', id: '{dag_id}'}`: `id` is built from the rule's path parameters. */
export interface Ownership {
  kind: string;
  id: string;
}

export interface Rule {
  id: string;
  action: Action;
  /** Allow rules without `when` only: no token needed. */
  public?: boolean;
  /** Exact names, `*.suffix`, or `*`. */
  hosts?: string[];
  methods?: string[];
  paths?: PathMatcher[];
  when?: When;
  /** Allow rules only: what to do when the provider's keys never loaded. */
  failure_mode?: FailureMode;
  /** `shadow`: the rule never decides; the decision records what it would have done. */
  mode?: Mode;
}

export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  [member: string]: unknown;
}

export interface Jwks {
  keys: Jwk[];
}

export interface LocalJwks {
  inline?: Jwks;
  /** Envoy's form: the JWKS as a string. */
  inline_string?: string;
}

export interface RemoteJwks {
  cluster: string;
  uri: string;
  cache_duration_s?: number;
  timeout_ms?: number;
  refetch_on_unknown_kid?: 'wait' | 'background' | 'off';
  refetch_min_interval_s?: number;
}

export interface HeaderSource {
  name: string;
  /** Matched case-insensitively, e.g. `Bearer `. */
  value_prefix?: string;
}

export interface ClaimToHeader {
  header_name: string;
  claim_name: string;
}

/** A Backstage auth backend: issuer `{base_url}/api/auth`, audience `backstage`, JWKS `{base_url}/api/auth/.well-known/jwks.json`. */
export interface BackstageProvider {
  /** The backend's base URL (`backend.baseUrl`). */
  base_url: string;
  /** The Envoy cluster the JWKS is fetched through. */
  cluster: string;
  /** Accept tokens without `typ` whose `aud` is `backstage`. Default false. */
  legacy_tokens?: boolean;
  /** Count the `group:` refs of `ent`. Default: off with a `snapshot`, on without. */
  trust_token_groups?: boolean;
  cache_duration_s?: number;
  timeout_ms?: number;
  refetch_on_unknown_kid?: 'wait' | 'background' | 'off';
  /** Default 5. */
  refetch_min_interval_s?: number;
}

export interface Provider {
  /** Exact `iss`; unique across providers. Required unless `backstage` is set (then derived). */
  issuer?: string;
  audiences?: string[];
  local_jwks?: LocalJwks;
  remote_jwks?: RemoteJwks;
  from_headers?: HeaderSource[];
  from_params?: string[];
  from_cookies?: string[];
  forward?: boolean;
  /** Claim name or dotted path (`realm_access.roles`). Default `groups`. */
  groups_claim?: string;
  email_claim?: string;
  username_claim?: string;
  clock_skew_s?: number;
  max_lifetime_s?: number;
  require_expiration?: boolean;
  max_groups?: number;
  groups_case_insensitive?: boolean;
  claim_to_headers?: ClaimToHeader[];
  /** Backstage user tokens; `issuer`, `audiences`, `local_jwks`, `remote_jwks` and `groups_claim` are then derived. */
  backstage?: BackstageProvider;
  /** How callers are found in the catalog snapshot; the first lookup that finds a user wins. */
  catalog_user?: CatalogUser;
}

export type ResolveBy = 'entity_ref' | 'email' | 'username' | 'email_local_part' | 'subject';

export interface CatalogUser {
  /** Default `['entity_ref', 'email']` (`['entity_ref']` for Backstage providers). */
  resolve_by?: ResolveBy[];
  /** Namespace of user entities for name lookups. Default `default`. */
  namespace?: string;
}

/** The control plane's signed catalog snapshot, polled through an Envoy cluster. */
export interface SnapshotSource {
  cluster: string;
  uri: string;
  /** The lines `meshgate keygen` prints. */
  public_keys: { kid: string; public_key: string }[];
  /** Default 10. */
  poll_interval_s?: number;
  /** Default 5000. */
  timeout_ms?: number;
  /** Hold each poll up to this long until a newer snapshot is published (`Prefer: wait`);
   *  0 to 55, default 0 (plain polling). */
  long_poll_s?: number;
  /** Default: none (the last good snapshot stays in force); must exceed `long_poll_s`. */
  max_staleness_s?: number;
  /** Default 64 MiB. */
  max_bytes?: number;
}

export interface ModeOverride {
  hosts?: string[];
  methods?: string[];
  paths?: PathMatcher[];
  mode: Mode;
}

export interface DecisionLog {
  allow_sample_rate?: number;
  deny_sample_rate?: number;
  filter_state?: boolean;
}

export interface PathNormalization {
  allow_encoded_slash?: boolean;
  allow_backslash?: boolean;
  allow_semicolon?: boolean;
  forward_normalized_path?: boolean;
}

/** The filter's plugin configuration (Envoy `configuration`, Istio `pluginConfig`). */
export interface PluginConfig {
  providers?: Record<string, Provider>;
  rules?: Rule[];
  default_action?: Action;
  mode?: Mode;
  mode_overrides?: ModeOverride[];
  decision_log?: DecisionLog;
  path_normalization?: PathNormalization;
  max_token_bytes?: number;
  jwt_cache_config?: { jwt_cache_size: number };
  realm?: string;
  failure_mode?: FailureMode;
  snapshot?: SnapshotSource;
}

// ---------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------

/** A token's claims, taken as verified. `iss` picks the provider. */
export interface Claims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  /** Unix seconds. */
  exp?: number;
  nbf?: number;
  iat?: number;
  groups?: string[] | string | null;
  email?: string;
  preferred_username?: string;
  scope?: string;
  [claim: string]: unknown;
}

interface RequestCommon {
  /** Upper-cased, as `meshgate check` does. */
  method: string;
  /** Accepted (names lowercased); a preview with claims reads no header. */
  headers?: Record<string, string>;
  /** The clock, in Unix seconds (or a Date). Default: now. */
  now?: number | Date;
}

/**
 * `url` is `http(s)://authority/path?query`, with the path kept exactly as written, or a `URL`
 * (its `href`: WHATWG parsing has already normalized the path); or give `host`
 * (`:authority`) and the raw `path`.
 */
export type RequestInput =
  | (RequestCommon & { url: string | { readonly href: string }; host?: never; path?: never })
  | (RequestCommon & { host: string; path: string; url?: never });

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

export type AllowCode = 'rule_allowed' | 'public_route' | 'default_allow' | 'fail_open';

export type DenyCode =
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'audience_mismatch'
  | 'issuer_unknown'
  | 'key_unknown'
  | 'algorithm_not_allowed'
  | 'signature_invalid'
  | 'jwks_unavailable'
  | 'token_location_not_allowed'
  | 'token_type_not_allowed'
  | 'path_rejected'
  | 'rule_denied'
  | 'no_rule_matched'
  | 'snapshot_unavailable';

/** `decided`: made the decision; `matched`: matched, but another rule decided first; `not_matched`: see `detail`; `needs_caller`: the request matches but `when` needs a verified caller; `error`: a condition cannot be evaluated for this caller (group overage or ownership without a catalog snapshot), so the allow rule doesn't allow (a deny rule in that state denies, and is `decided`). */
export type RuleOutcome = 'decided' | 'matched' | 'not_matched' | 'needs_caller' | 'error';

export interface RuleTrace {
  id: string;
  action: Action;
  outcome: RuleOutcome;
  /** What matched, or the first reason it didn't. */
  detail: string;
}

export interface Principal {
  /** Provider name (a key of `providers`). */
  provider: string;
  subject: string | null;
  email: string | null;
  /** Sorted, deduplicated. */
  groups: string[];
}

/** What shadow rules would have decided, when that differs from the decision. */
export interface ShadowOutcome {
  decision: 'allow' | 'deny';
  code: AllowCode | DenyCode;
  rule_id: string | null;
}

interface ExplanationCommon {
  /** Fixed text per case; may quote claim values. */
  reason: string;
  /** The rule that decided, if one did. */
  rule_id: string | null;
  /** Host lowercased without port; `path` normalized, `null` when the path was rejected. */
  request: { method: string; host: string; path: string | null };
  /** The verified caller, when the claims were accepted. */
  principal: Principal | null;
  /** Every rule: deny rules first, then allow rules, in configuration order. Empty when the path was rejected. */
  rules: RuleTrace[];
  /** `shadow`: the filter lets the request through whatever the decision, and logs it. */
  mode: Mode;
  shadow: ShadowOutcome | null;
}

export type Explanation = ExplanationCommon &
  (
    | { decision: 'allow'; code: AllowCode; status: 200 }
    | { decision: 'deny'; code: DenyCode; status: 400 | 401 | 403 | 503 }
  );

export type Validation =
  | { ok: true; providers: number; rules: number }
  | { ok: false; path: string; message: string };

// ---------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------

export type ErrorKind = 'config' | 'claims' | 'request' | 'internal';

/** Thrown by `explain` for bad input. `message` is `` kind: `path`: reason ``. */
export class MeshgateError extends Error {
  readonly name: 'MeshgateError';
  readonly kind: ErrorKind;
  /** JSON path of the bad field (`rules[0].paths[0]`), `(root)` for the whole document. */
  readonly path: string;
  readonly reason: string;
}

/**
 * The decision the filter would make for `request` from a caller whose token carries
 * `claims`, with every rule's outcome. The claims are taken as verified; every other check
 * (issuer, audience, times, groups, rules, path normalization) is the filter's own code.
 * Strings are taken as JSON. Throws `MeshgateError` for a bad config, claims or request.
 */
export function explain(
  config: PluginConfig | string,
  claims: Claims | string,
  request: RequestInput | string,
): Explanation;

/** Compiles a configuration exactly as the filter's `on_configure` does. Never throws for a bad one. */
export function validate(config: PluginConfig | string): Validation;

/** The meshgate version this package was built from. */
export function version(): string;
