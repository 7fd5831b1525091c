import { ReactNode, useEffect, useRef, useState } from 'react';
import Button from '@material-ui/core/Button';
import CircularProgress from '@material-ui/core/CircularProgress';
import Dialog from '@material-ui/core/Dialog';
import DialogActions from '@material-ui/core/DialogActions';
import DialogContent from '@material-ui/core/DialogContent';
import DialogTitle from '@material-ui/core/DialogTitle';
import TextField from '@material-ui/core/TextField';
import Typography from '@material-ui/core/Typography';
import { Alert } from '@material-ui/lab';
import { useApi } from '@backstage/core-plugin-api';
import useAsyncRetry from 'react-use/esm/useAsyncRetry';
import {
  AccessRequest,
  AccessTarget,
  MeshgateAccessError,
  meshgateAccessApiRef,
} from '../../api';
import {
  checkRequest,
  findEntry,
  RequestProblems,
  targetLabel,
} from '../../lib/access';
import { ErrorNotice } from '../shared/ErrorNotice';

export interface RequestAccessDialogProps {
  open: boolean;
  target: AccessTarget;
  onClose: () => void;
  /** Called with the request as created, and again each time its state changes. */
  onChange?: (request: AccessRequest) => void;
  /** How often a pending request's state is read again (3 s). */
  pollIntervalMs?: number;
}

const STATE_WORDS: Record<string, string> = {
  pending: 'Waiting for approval',
  approved: 'Approved: access granted',
  denied: 'Denied',
  cancelled: 'Cancelled',
  expired: 'Expired',
};

const STATE_SEVERITY: Record<string, 'success' | 'info' | 'warning'> = {
  approved: 'success',
  pending: 'info',
};

/** Duration and reason, checked against the access policy before sending; then the request's state. */
export function RequestAccessDialog(props: RequestAccessDialogProps) {
  const { open, target, onClose, onChange, pollIntervalMs = 3000 } = props;
  const api = useApi(meshgateAccessApiRef);
  const policy = useAsyncRetry(
    async () => (open ? api.getPolicy() : undefined),
    [api, open],
  );
  const entry = policy.value ? findEntry(policy.value, target) : undefined;

  const [duration, setDuration] = useState('');
  const [reason, setReason] = useState('');
  const [problems, setProblems] = useState<RequestProblems>({});
  const [sending, setSending] = useState(false);
  const [sendError, setSendError] = useState<unknown>();
  const [request, setRequest] = useState<AccessRequest>();
  const [pollError, setPollError] = useState<unknown>();

  // A sensible first duration: 15 minutes, or the entry's maximum when that is less.
  useEffect(() => {
    if (entry && duration === '') {
      setDuration(entry.max_duration_s < 900 ? entry.max_duration : '15m');
    }
  }, [entry, duration]);

  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  // Follow a pending request until it is decided.
  const requestId = request?.id;
  const pending = request?.state === 'pending';
  useEffect(() => {
    if (!requestId || !pending) return undefined;
    let stopped = false;
    const timer = setInterval(async () => {
      try {
        const fresh = await api.getRequest(requestId);
        if (stopped) return;
        setPollError(undefined);
        setRequest(previous => {
          if (previous?.state !== fresh.state) onChangeRef.current?.(fresh);
          return fresh;
        });
      } catch (error) {
        if (stopped) return;
        setPollError(error);
        if (
          error instanceof MeshgateAccessError &&
          error.kind === 'unauthenticated'
        ) {
          stopped = true;
          clearInterval(timer);
        }
      }
    }, pollIntervalMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [api, requestId, pending, pollIntervalMs]);

  const submit = async () => {
    if (!entry) return;
    const found = checkRequest(entry, duration, reason);
    setProblems(found);
    if (found.duration || found.reason) return;
    setSending(true);
    setSendError(undefined);
    try {
      const created = await api.createRequest({
        target,
        duration: duration.trim(),
        ...(reason.trim() ? { reason: reason.trim() } : {}),
      });
      setRequest(created);
      onChangeRef.current?.(created);
    } catch (error) {
      setSendError(error);
    } finally {
      setSending(false);
    }
  };

  const label = targetLabel(target);
  let body: ReactNode;
  if (policy.loading) {
    body = <CircularProgress aria-label="Loading the access policy" />;
  } else if (policy.error) {
    body = <ErrorNotice error={policy.error} onRetry={policy.retry} />;
  } else if (!entry) {
    body = (
      <Alert severity="info" data-testid="not-requestable">
        The access policy does not let anyone request {label}.
      </Alert>
    );
  } else if (request) {
    body = (
      <>
        <Typography>
          Request <code>{request.id}</code> for {label}, {request.duration}.
        </Typography>
        <Alert
          severity={STATE_SEVERITY[request.state] ?? 'warning'}
          data-testid="request-state"
          data-state={request.state}
        >
          {STATE_WORDS[request.state] ?? request.state}
          {request.auto_approved
            ? ` (approved at once by the policy: ${request.auto_approved.condition})`
            : ''}
          {request.state === 'approved' && request.grant
            ? `, until ${new Date(request.grant.not_after_ms).toLocaleTimeString()}`
            : ''}
        </Alert>
        {pollError ? <ErrorNotice error={pollError} /> : null}
      </>
    );
  } else {
    body = (
      <>
        <Typography variant="body2" paragraph>
          Policy entry <strong>{entry.name}</strong>: at most{' '}
          {entry.max_duration}, reason {entry.reason}
          {entry.approvers === 'owners'
            ? ', approved by the owners'
            : `, approved by ${entry.approvers.join(', ')}`}
          .
        </Typography>
        <TextField
          label="Duration"
          value={duration}
          onChange={event => setDuration(event.target.value)}
          error={Boolean(problems.duration)}
          helperText={
            problems.duration ??
            `e.g. 15m, 1h30m; at most ${entry.max_duration}`
          }
          inputProps={{ 'data-testid': 'request-duration' }}
          fullWidth
          margin="normal"
        />
        <TextField
          label="Reason"
          value={reason}
          onChange={event => setReason(event.target.value)}
          error={Boolean(problems.reason)}
          helperText={
            problems.reason ??
            (entry.reason === 'required' ? 'Required' : 'Optional')
          }
          required={entry.reason === 'required'}
          inputProps={{ 'data-testid': 'request-reason' }}
          multiline
          minRows={2}
          fullWidth
          margin="normal"
        />
        {sendError ? (
          <ErrorNotice error={sendError} testId="request-refused" />
        ) : null}
      </>
    );
  }

  return (
    <Dialog open={open} onClose={onClose} fullWidth maxWidth="sm">
      <DialogTitle>Request access to {label}</DialogTitle>
      <DialogContent>{body}</DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Close</Button>
        {entry && !request ? (
          <Button
            color="primary"
            variant="contained"
            onClick={submit}
            disabled={sending}
            data-testid="request-submit"
          >
            {sending ? 'Sending…' : 'Send request'}
          </Button>
        ) : null}
      </DialogActions>
    </Dialog>
  );
}
