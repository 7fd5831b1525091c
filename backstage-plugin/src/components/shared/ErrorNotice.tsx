import { useEffect, useState } from 'react';
import Button from '@material-ui/core/Button';
import { Alert } from '@material-ui/lab';
import { describeError, MeshgateAccessError } from '../../api';

/** An error in words, with a retry button when retrying can help. */
export function ErrorNotice(props: {
  error: unknown;
  onRetry?: () => void;
  testId?: string;
}) {
  const { error, onRetry, testId } = props;
  const kind = error instanceof MeshgateAccessError ? error.kind : 'unexpected';
  const canRetry = onRetry && kind !== 'unauthenticated';
  return (
    <Alert
      severity={kind === 'refused' ? 'warning' : 'error'}
      data-testid={testId ?? `meshgate-error-${kind}`}
      action={
        canRetry ? (
          <Button color="inherit" size="small" onClick={onRetry}>
            Retry
          </Button>
        ) : undefined
      }
    >
      {describeError(error)}
      {error instanceof MeshgateAccessError && error.code
        ? ` (${error.code})`
        : ''}
    </Alert>
  );
}

/** The current time, refreshed every `intervalMs`, for "time left" columns. */
export function useNow(intervalMs = 10_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
