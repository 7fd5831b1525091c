import { ReactNode, useMemo, useState } from 'react';
import Box from '@material-ui/core/Box';
import Button from '@material-ui/core/Button';
import Chip from '@material-ui/core/Chip';
import CircularProgress from '@material-ui/core/CircularProgress';
import Table from '@material-ui/core/Table';
import TableBody from '@material-ui/core/TableBody';
import TableCell from '@material-ui/core/TableCell';
import TableHead from '@material-ui/core/TableHead';
import TableRow from '@material-ui/core/TableRow';
import Typography from '@material-ui/core/Typography';
import { InfoCard } from '@backstage/core-components';
import { identityApiRef, useApi } from '@backstage/core-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import useAsyncRetry from 'react-use/esm/useAsyncRetry';
import { AccessGrant, AccessTarget, meshgateAccessApiRef } from '../../api';
import {
  entityOwners,
  entityTargets,
  sameTarget,
  targetKey,
  targetLabel,
  timeLeft,
  verdictFor,
} from '../../lib/access';
import { RequestAccessDialog } from '../RequestAccessDialog';
import { ErrorNotice, useNow } from '../shared/ErrorNotice';

export interface EntityAccessCardProps {
  /** Annotation key -> resource kind, when the control plane maps other keys than the defaults. */
  annotations?: Record<string, string>;
  /** How often a pending request is polled in the dialog (3 s). */
  pollIntervalMs?: number;
}

/**
 * Access to the meshgate resources an entity stands for: its owners, the active grants,
 * and what the signed-in user may do now, with the reason when not, and a request button.
 */
export function EntityAccessCard(props: EntityAccessCardProps) {
  const { annotations, pollIntervalMs } = props;
  const { entity } = useEntity();
  const api = useApi(meshgateAccessApiRef);
  const identityApi = useApi(identityApiRef);
  const now = useNow();
  const [dialogTarget, setDialogTarget] = useState<AccessTarget>();

  const targets = useMemo(
    () => entityTargets(entity, annotations),
    [entity, annotations],
  );
  const owners = useMemo(() => entityOwners(entity), [entity]);

  const state = useAsyncRetry(async () => {
    if (targets.length === 0) return undefined;
    const [identity, myGrants, visibleGrants, myRequests] = await Promise.all([
      identityApi.getBackstageIdentity(),
      api.listGrants('mine'),
      api.listGrants('visible'),
      api.listRequests('mine'),
    ]);
    const byId = new Map<string, AccessGrant>();
    for (const grant of [...visibleGrants, ...myGrants]) {
      if (targets.some(target => sameTarget(grant.target, target))) {
        byId.set(grant.id, grant);
      }
    }
    return {
      identity,
      myGrants,
      myRequests,
      grants: [...byId.values()].sort((a, b) => a.not_after_ms - b.not_after_ms),
    };
  }, [api, identityApi, targets]);

  if (targets.length === 0) {
    return (
      <InfoCard title="Access">
        <Typography data-testid="access-unprotected">
          meshgate protects nothing on this entity: it has none of the ownership
          annotations.
        </Typography>
      </InfoCard>
    );
  }

  let content: ReactNode;
  if (state.loading && !state.value) {
    content = <CircularProgress aria-label="Loading access" />;
  } else if (state.error) {
    content = <ErrorNotice error={state.error} onRetry={state.retry} />;
  } else if (state.value) {
    const { identity, myGrants, myRequests, grants } = state.value;
    content = (
      <>
        <Typography variant="subtitle2">Owners</Typography>
        <Box mb={2} data-testid="access-owners">
          {owners.length > 0 ? (
            owners.map(owner => (
              <Chip key={owner} label={owner} size="small" style={{ marginRight: 4 }} />
            ))
          ) : (
            <Typography variant="body2">The catalog names no owner.</Typography>
          )}
        </Box>

        <Typography variant="subtitle2">
          You ({identity.userEntityRef})
        </Typography>
        {targets.map(target => {
          const verdict = verdictFor({
            target,
            owners,
            ownershipRefs: identity.ownershipEntityRefs,
            grants: myGrants,
            requests: myRequests,
            nowMs: now,
          });
          const key = targetKey(target);
          return (
            <Box
              key={key}
              display="flex"
              alignItems="center"
              my={1}
              data-testid={`access-verdict-${key}`}
              data-allowed={verdict.allowed ? 'true' : 'false'}
            >
              <Chip
                size="small"
                label={verdict.allowed ? 'Allowed' : 'Denied'}
                color={verdict.allowed ? 'primary' : 'default'}
                style={{ marginRight: 8 }}
              />
              <Typography variant="body2" style={{ flex: 1 }}>
                {verdict.why}
              </Typography>
              {!verdict.allowed && !verdict.pending ? (
                <Button
                  size="small"
                  variant="outlined"
                  color="primary"
                  aria-label={`Request access to ${targetLabel(target)}`}
                  data-testid={`request-access-${key}`}
                  onClick={() => setDialogTarget(target)}
                >
                  Request access
                </Button>
              ) : null}
            </Box>
          );
        })}

        <Typography variant="subtitle2" style={{ marginTop: 16 }}>
          Active grants
        </Typography>
        {grants.length === 0 ? (
          <Typography variant="body2" data-testid="access-no-grants">
            No active grants you can see.
          </Typography>
        ) : (
          <Table size="small" aria-label="Active grants">
            <TableHead>
              <TableRow>
                <TableCell>User</TableCell>
                <TableCell>Target</TableCell>
                <TableCell>Time left</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {grants.map(grant => (
                <TableRow key={grant.id} data-testid={`access-grant-${grant.id}`}>
                  <TableCell>{grant.user}</TableCell>
                  <TableCell>{targetLabel(grant.target)}</TableCell>
                  <TableCell>{timeLeft(grant.not_after_ms, now)}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </>
    );
  }

  return (
    <InfoCard title="Access" subheader="meshgate">
      {content}
      {dialogTarget ? (
        <RequestAccessDialog
          open
          target={dialogTarget}
          pollIntervalMs={pollIntervalMs}
          onClose={() => {
            setDialogTarget(undefined);
            state.retry();
          }}
        />
      ) : null}
    </InfoCard>
  );
}
