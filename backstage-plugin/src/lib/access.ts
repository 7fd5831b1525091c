import {
  Entity,
  parseEntityRef,
  RELATION_OWNED_BY,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import {
  AccessGrant,
  AccessPolicy,
  AccessRequest,
  AccessTarget,
  RequestableEntry,
} from '../api/types';

/**
 * Annotation key -> resource kind, the control plane's default ownership annotations
 * (docs/control-plane.md, "Ownership annotations"). A catalog that maps other keys with
 * `catalog.ownership_annotations` passes the same map to the card.
 */
export const DEFAULT_OWNERSHIP_ANNOTATIONS: Record<string, string> = {
  'meshgate.io/airflow-dag': 'airflow.dag',
  'buildkite.com/pipeline-slug': 'buildkite.pipeline',
  'meshgate.io/airbyte-connection': 'airbyte.connection',
  'meshgate.io/service-host': 'service.host',
};

/** The meshgate targets an entity stands for: its annotated resources, or itself as a group. */
export function entityTargets(
  entity: Entity,
  annotations: Record<string, string> = DEFAULT_OWNERSHIP_ANNOTATIONS,
): AccessTarget[] {
  if (entity.kind.toLowerCase() === 'group') {
    return [{ group: stringifyEntityRef(entity) }];
  }
  const targets: AccessTarget[] = [];
  const present = entity.metadata.annotations ?? {};
  for (const [key, kind] of Object.entries(annotations)) {
    const value = present[key];
    if (typeof value !== 'string') continue;
    for (const id of value.split(',').map(part => part.trim())) {
      if (id) targets.push({ resource: { kind, id } });
    }
  }
  return targets;
}

/** Whether meshgate protects the entity: for `EntitySwitch.Case if={...}`. */
export function isMeshgateProtected(entity: Entity): boolean {
  return entityTargets(entity).length > 0;
}

/** The owning groups (or user) of an entity, as full entity refs. */
export function entityOwners(entity: Entity): string[] {
  const fromRelations = (entity.relations ?? [])
    .filter(relation => relation.type === RELATION_OWNED_BY)
    .map(relation => relation.targetRef.toLowerCase());
  if (fromRelations.length > 0) return unique(fromRelations);
  const owner = (entity.spec as { owner?: unknown } | undefined)?.owner;
  if (typeof owner !== 'string' || owner === '') return [];
  try {
    return [
      stringifyEntityRef(
        parseEntityRef(owner, {
          defaultKind: 'group',
          defaultNamespace: entity.metadata.namespace ?? 'default',
        }),
      ).toLowerCase(),
    ];
  } catch {
    return [];
  }
}

export function targetLabel(target: AccessTarget): string {
  return 'group' in target
    ? target.group
    : `${target.resource.kind} ${target.resource.id}`;
}

/** A stable key for a target, for React keys and test ids. */
export function targetKey(target: AccessTarget): string {
  return 'group' in target
    ? `group:${target.group.toLowerCase()}`
    : `${target.resource.kind}/${target.resource.id}`;
}

export function sameTarget(a: AccessTarget, b: AccessTarget): boolean {
  if ('group' in a && 'group' in b) {
    return a.group.toLowerCase() === b.group.toLowerCase();
  }
  if ('resource' in a && 'resource' in b) {
    return a.resource.kind === b.resource.kind && a.resource.id === b.resource.id;
  }
  return false;
}

/** The policy entry a request for `target` falls under: the first that covers it (docs/access.md). */
export function findEntry(
  policy: AccessPolicy,
  target: AccessTarget,
): RequestableEntry | undefined {
  return policy.requestable.find(entry => {
    const covers = entry.target;
    if ('group' in covers) {
      return 'group' in target && covers.group.toLowerCase() === target.group.toLowerCase();
    }
    return (
      'resource' in target &&
      covers.resource.kind === target.resource.kind &&
      (covers.resource.id === undefined ||
        covers.resource.id === null ||
        covers.resource.id === target.resource.id)
    );
  });
}

const UNIT_SECONDS: Record<string, number> = { d: 86400, h: 3600, m: 60, s: 1 };

/**
 * Seconds in a duration as the access policy writes them: `15m`, `1h30m`, `1d`, `90s`
 * (units d h m s, largest first, each at most once) or ISO 8601 `PT1H`, `P1DT12H`.
 * Undefined when it does not parse.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  const short = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(trimmed);
  const iso = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(trimmed);
  const match = short ?? iso;
  if (!match || trimmed === '' || trimmed === 'P' || /T$/.test(trimmed)) {
    return undefined;
  }
  const parts = match.slice(1, 5);
  if (parts.every(part => part === undefined)) return undefined;
  return parts.reduce(
    (total, part, index) =>
      total + Number(part ?? 0) * Object.values(UNIT_SECONDS)[index],
    0,
  );
}

/** `1h 5m`, `14m`, `40s`: a short, readable span. */
export function formatSpan(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days > 0) return hours > 0 ? `${days}d ${hours}h` : `${days}d`;
  if (hours > 0) return minutes > 0 ? `${hours}h ${minutes}m` : `${hours}h`;
  if (minutes > 0) return `${minutes}m`;
  return `${s}s`;
}

export function timeLeft(notAfterMs: number, nowMs: number): string {
  return notAfterMs <= nowMs
    ? 'expired'
    : `${formatSpan((notAfterMs - nowMs) / 1000)} left`;
}

/** Problems with a request before it is sent, in the policy's terms; empty when it may be sent. */
export interface RequestProblems {
  duration?: string;
  reason?: string;
}

export function checkRequest(
  entry: RequestableEntry,
  duration: string,
  reason: string,
): RequestProblems {
  const problems: RequestProblems = {};
  const seconds = parseDuration(duration);
  if (seconds === undefined) {
    problems.duration = `\`${duration}\` is not a duration (15m, 1h30m, 1d or PT1H)`;
  } else if (seconds === 0) {
    problems.duration = 'the duration must be more than 0';
  } else if (seconds > entry.max_duration_s) {
    problems.duration = `at most ${entry.max_duration} for ${entry.name}`;
  }
  if (entry.reason === 'required' && reason.trim() === '') {
    problems.reason = 'a reason is required';
  } else if (reason.length > 1000) {
    problems.reason = 'at most 1000 characters';
  }
  return problems;
}

export interface Verdict {
  allowed: boolean;
  /** One plain sentence: why the user may or may not. */
  why: string;
  grant?: AccessGrant;
  pending?: AccessRequest;
}

/**
 * What the signed-in user may do on one target now, from the facts meshgate's rules use
 * with `when.owns` and `groups_any`: ownership (the user's Backstage ownership refs against
 * the entity's owners) and the user's active grants. The edge decides with the rules; this
 * states the part that access requests change.
 */
export function verdictFor(options: {
  target: AccessTarget;
  owners: string[];
  ownershipRefs: string[];
  grants: AccessGrant[];
  requests: AccessRequest[];
  nowMs: number;
}): Verdict {
  const { target, owners, ownershipRefs, grants, requests, nowMs } = options;
  const mine = new Set(ownershipRefs.map(ref => ref.toLowerCase()));
  const label = targetLabel(target);
  const isGroup = 'group' in target;
  if (isGroup && mine.has(target.group.toLowerCase())) {
    return { allowed: true, why: `You are a member of ${target.group}.` };
  }
  const owning = owners.filter(owner => mine.has(owner.toLowerCase()));
  if (!isGroup && owning.length > 0) {
    return {
      allowed: true,
      why: `You may use ${label}: you are in ${owning.join(', ')}, which owns it.`,
    };
  }
  const grant = grants.find(
    g =>
      sameTarget(g.target, target) &&
      !g.revoked_at_ms &&
      g.not_before_ms <= nowMs &&
      nowMs < g.not_after_ms,
  );
  if (grant) {
    return {
      allowed: true,
      grant,
      why: `You may use ${label} through grant ${grant.id} (${timeLeft(grant.not_after_ms, nowMs)}).`,
    };
  }
  const pending = requests.find(
    r => r.state === 'pending' && sameTarget(r.target, target),
  );
  const ownerText =
    owners.length > 0 ? owners.join(', ') : 'no one (the catalog names no owner)';
  const why = isGroup
    ? `You are not a member of ${target.group} and hold no grant for it.`
    : `You may not use ${label}: it is owned by ${ownerText}, you are in none of the owning groups, and you hold no grant on it.`;
  return {
    allowed: false,
    pending,
    why: pending
      ? `${why} Your request ${pending.id} is waiting for approval.`
      : why,
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
