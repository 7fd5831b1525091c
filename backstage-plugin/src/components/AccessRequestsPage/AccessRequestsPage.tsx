import { ReactNode, useEffect, useState } from 'react';
import Button from '@material-ui/core/Button';
import CircularProgress from '@material-ui/core/CircularProgress';
import Dialog from '@material-ui/core/Dialog';
import DialogActions from '@material-ui/core/DialogActions';
import DialogContent from '@material-ui/core/DialogContent';
import DialogTitle from '@material-ui/core/DialogTitle';
import Grid from '@material-ui/core/Grid';
import Table from '@material-ui/core/Table';
import TableBody from '@material-ui/core/TableBody';
import TableCell from '@material-ui/core/TableCell';
import TableHead from '@material-ui/core/TableHead';
import TableRow from '@material-ui/core/TableRow';
import TextField from '@material-ui/core/TextField';
import Typography from '@material-ui/core/Typography';
import { Content, Header, InfoCard, Page } from '@backstage/core-components';
import { useApi } from '@backstage/core-plugin-api';
import useAsyncRetry from 'react-use/esm/useAsyncRetry';
import {
  AccessGrant,
  AccessRequest,
  MeshgateAccessError,
  meshgateAccessApiRef,
} from '../../api';
import { targetLabel, timeLeft } from '../../lib/access';
import { ErrorNotice, useNow } from '../shared/ErrorNotice';

type Action =
  | { kind: 'approve' | 'deny'; request: AccessRequest }
  | { kind: 'revoke'; grant: AccessGrant };

const ACTION_VERBS: Record<Action['kind'], string> = {
  approve: 'Approve',
  deny: 'Deny',
  revoke: 'Revoke',
};

export interface AccessRequestsPageProps {
  /** How often the lists are read again (10 s); 0 for never. */
  refreshIntervalMs?: number;
}

/** Requests waiting for me, my requests, my grants and the grants I may revoke. */
export function AccessRequestsPage(props: AccessRequestsPageProps) {
  const { refreshIntervalMs = 10_000 } = props;
  const api = useApi(meshgateAccessApiRef);
  const now = useNow();
  const [action, setAction] = useState<Action>();
  const [comment, setComment] = useState('');
  const [acting, setActing] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const [notice, setNotice] = useState<string>();

  const lists = useAsyncRetry(async () => {
    const [pending, mine, myGrants, visibleGrants] = await Promise.all([
      api.listRequests('pending_for_me'),
      api.listRequests('mine'),
      api.listGrants('mine'),
      api.listGrants('visible'),
    ]);
    return { pending, mine, myGrants, visibleGrants };
  }, [api]);

  const { retry } = lists;
  useEffect(() => {
    if (!refreshIntervalMs) return undefined;
    const timer = setInterval(() => retry(), refreshIntervalMs);
    return () => clearInterval(timer);
  }, [retry, refreshIntervalMs]);

  const open = (next: Action) => {
    setAction(next);
    setComment('');
    setActionError(undefined);
  };

  const confirm = async () => {
    if (!action) return;
    setActing(true);
    setActionError(undefined);
    try {
      if (action.kind === 'revoke') {
        await api.revokeGrant(action.grant.id, comment);
        setNotice(`Grant ${action.grant.id} revoked.`);
      } else if (action.kind === 'approve') {
        const result = await api.approve(action.request.id, comment);
        setNotice(`Request ${result.id} approved: now ${result.state}.`);
      } else {
        const result = await api.deny(action.request.id, comment);
        setNotice(`Request ${result.id} denied: now ${result.state}.`);
      }
      setAction(undefined);
      lists.retry();
    } catch (error) {
      setActionError(error);
    } finally {
      setActing(false);
    }
  };

  const cancel = async (request: AccessRequest) => {
    setActionError(undefined);
    try {
      await api.cancel(request.id);
      setNotice(`Request ${request.id} cancelled.`);
      lists.retry();
    } catch (error) {
      setActionError(error);
    }
  };

  let content: ReactNode;
  if (lists.loading && !lists.value) {
    content = <CircularProgress aria-label="Loading access requests" />;
  } else if (lists.error && !lists.value) {
    content = <ErrorNotice error={lists.error} onRetry={lists.retry} />;
  } else if (lists.value) {
    const { pending, mine, myGrants, visibleGrants } = lists.value;
    const mineIds = new Set(myGrants.map(g => g.id));
    const othersGrants = visibleGrants.filter(g => !mineIds.has(g.id));
    content = (
      <Grid container spacing={3}>
        {lists.error ? (
          <Grid item xs={12}>
            <ErrorNotice error={lists.error} onRetry={lists.retry} />
          </Grid>
        ) : null}
        {notice ? (
          <Grid item xs={12}>
            <Typography data-testid="access-notice">{notice}</Typography>
          </Grid>
        ) : null}
        {actionError && !action ? (
          <Grid item xs={12}>
            <ErrorNotice error={actionError} testId="action-refused" />
          </Grid>
        ) : null}
        <Grid item xs={12}>
          <InfoCard title="Waiting for me">
            {pending.length === 0 ? (
              <Typography data-testid="pending-empty">
                No request is waiting for your review.
              </Typography>
            ) : (
              <Table size="small" aria-label="Waiting for me">
                <TableHead>
                  <TableRow>
                    <TableCell>Requester</TableCell>
                    <TableCell>Target</TableCell>
                    <TableCell>Duration</TableCell>
                    <TableCell>Reason</TableCell>
                    <TableCell />
                  </TableRow>
                </TableHead>
                <TableBody>
                  {pending.map(request => (
                    <TableRow key={request.id} data-testid={`pending-row-${request.id}`}>
                      <TableCell>{request.requester}</TableCell>
                      <TableCell>{targetLabel(request.target)}</TableCell>
                      <TableCell>{request.duration}</TableCell>
                      <TableCell>{request.reason}</TableCell>
                      <TableCell align="right">
                        <Button
                          color="primary"
                          aria-label={`Approve ${request.id}`}
                          data-testid={`approve-${request.id}`}
                          onClick={() => open({ kind: 'approve', request })}
                        >
                          Approve
                        </Button>
                        <Button
                          aria-label={`Deny ${request.id}`}
                          data-testid={`deny-${request.id}`}
                          onClick={() => open({ kind: 'deny', request })}
                        >
                          Deny
                        </Button>
                      </TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            )}
          </InfoCard>
        </Grid>
        <Grid item xs={12}>
          <InfoCard title="My requests">
            {mine.length === 0 ? (
              <Typography data-testid="mine-empty">You have made no request.</Typography>
            ) : (
              <Table size="small" aria-label="My requests">
                <TableHead>
                  <TableRow>
                    <TableCell>Request</TableCell>
                    <TableCell>Target</TableCell>
                    <TableCell>Duration</TableCell>
                    <TableCell>State</TableCell>
                    <TableCell />
                  </TableRow>
                </TableHead>
                <TableBody>
                  {mine.map(request => (
                    <TableRow key={request.id} data-testid={`my-request-${request.id}`}>
                      <TableCell>{request.id}</TableCell>
                      <TableCell>{targetLabel(request.target)}</TableCell>
                      <TableCell>{request.duration}</TableCell>
                      <TableCell data-testid={`my-request-state-${request.id}`}>
                        {request.state}
                      </TableCell>
                      <TableCell align="right">
                        {request.state === 'pending' ? (
                          <Button
                            aria-label={`Cancel ${request.id}`}
                            data-testid={`cancel-${request.id}`}
                            onClick={() => cancel(request)}
                          >
                            Cancel
                          </Button>
                        ) : null}
                      </TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            )}
          </InfoCard>
        </Grid>
        <Grid item xs={12}>
          <InfoCard title="Grants">
            <GrantTable
              label="My grants"
              empty="You hold no active grant."
              grants={myGrants}
              now={now}
              onRevoke={grant => open({ kind: 'revoke', grant })}
            />
            <Typography variant="subtitle2" style={{ marginTop: 16 }}>
              Grants on what you own or administer
            </Typography>
            <GrantTable
              label="Grants I can revoke"
              empty="No other active grant you can revoke."
              grants={othersGrants}
              now={now}
              onRevoke={grant => open({ kind: 'revoke', grant })}
            />
          </InfoCard>
        </Grid>
      </Grid>
    );
  }

  const verb = action ? ACTION_VERBS[action.kind] : '';
  let title = '';
  if (action?.kind === 'revoke') title = `Revoke grant ${action.grant.id}`;
  else if (action) title = `${verb} request ${action.request.id}`;
  return (
    <Page themeId="tool">
      <Header title="Access requests" subtitle="meshgate self-service access" />
      <Content>
        {content}
        <Dialog open={Boolean(action)} onClose={() => setAction(undefined)} fullWidth>
          <DialogTitle>{title}</DialogTitle>
          <DialogContent>
            {action && action.kind !== 'revoke' ? (
              <Typography paragraph>
                {action.request.requester} asks for {targetLabel(action.request.target)} for{' '}
                {action.request.duration}: {action.request.reason || '(no reason)'}
              </Typography>
            ) : null}
            <TextField
              label="Comment"
              value={comment}
              onChange={event => setComment(event.target.value)}
              inputProps={{ 'data-testid': 'action-comment' }}
              fullWidth
              multiline
              minRows={2}
            />
            {actionError && action ? (
              <ErrorNotice
                error={actionError}
                testId={
                  actionError instanceof MeshgateAccessError &&
                  actionError.kind === 'refused'
                    ? 'action-refused'
                    : undefined
                }
              />
            ) : null}
          </DialogContent>
          <DialogActions>
            <Button onClick={() => setAction(undefined)}>Close</Button>
            <Button
              color="primary"
              variant="contained"
              disabled={acting}
              onClick={confirm}
              data-testid="action-confirm"
            >
              {verb}
            </Button>
          </DialogActions>
        </Dialog>
      </Content>
    </Page>
  );
}

function GrantTable(props: {
  label: string;
  empty: string;
  grants: AccessGrant[];
  now: number;
  onRevoke: (grant: AccessGrant) => void;
}) {
  const { label, empty, grants, now, onRevoke } = props;
  if (grants.length === 0) {
    return <Typography variant="body2">{empty}</Typography>;
  }
  return (
    <Table size="small" aria-label={label}>
      <TableHead>
        <TableRow>
          <TableCell>Grant</TableCell>
          <TableCell>User</TableCell>
          <TableCell>Target</TableCell>
          <TableCell>Time left</TableCell>
          <TableCell />
        </TableRow>
      </TableHead>
      <TableBody>
        {grants.map(grant => (
          <TableRow key={grant.id} data-testid={`grant-row-${grant.id}`}>
            <TableCell>{grant.id}</TableCell>
            <TableCell>{grant.user}</TableCell>
            <TableCell>{targetLabel(grant.target)}</TableCell>
            <TableCell>{timeLeft(grant.not_after_ms, now)}</TableCell>
            <TableCell align="right">
              <Button
                aria-label={`Revoke ${grant.id}`}
                data-testid={`revoke-${grant.id}`}
                onClick={() => onRevoke(grant)}
              >
                Revoke
              </Button>
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
