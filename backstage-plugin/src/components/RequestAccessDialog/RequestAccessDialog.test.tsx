import { fireEvent, screen, waitFor } from '@testing-library/react';
import { renderInTestApp, TestApiProvider } from '@backstage/test-utils';
import { MeshgateAccessError, meshgateAccessApiRef } from '../../api';
import { RequestAccessDialog } from './RequestAccessDialog';
import { aGrant, aRequest, fakeAccessApi } from '../../testing/fakeAccessApi';

const target = { resource: { kind: 'airflow.dag', id: 'etl_daily' } };

async function renderDialog(api: ReturnType<typeof fakeAccessApi>, pollIntervalMs = 20) {
  await renderInTestApp(
    <TestApiProvider apis={[[meshgateAccessApiRef, api]]}>
      <RequestAccessDialog open target={target} onClose={() => {}} pollIntervalMs={pollIntervalMs} />
    </TestApiProvider>,
  );
  await screen.findByTestId('request-duration');
}

function fill(duration: string, reason: string) {
  fireEvent.change(screen.getByTestId('request-duration'), { target: { value: duration } });
  fireEvent.change(screen.getByTestId('request-reason'), { target: { value: reason } });
  fireEvent.click(screen.getByTestId('request-submit'));
}

describe('RequestAccessDialog', () => {
  it('shows the policy entry and starts at 15 minutes', async () => {
    await renderDialog(fakeAccessApi());
    expect(screen.getByText(/airflow-dags/)).toBeInTheDocument();
    expect(screen.getByTestId('request-duration')).toHaveValue('15m');
  });

  it.each([
    ['2h', 'backfill', /at most 1h for airflow-dags/],
    ['soon', 'backfill', /is not a duration/],
    ['15m', '', /a reason is required/],
  ])('refuses %p / %p before sending', async (duration, reason, message) => {
    const api = fakeAccessApi();
    await renderDialog(api);
    fill(duration, reason);
    expect(await screen.findByText(message)).toBeInTheDocument();
    expect(api.createRequest).not.toHaveBeenCalled();
  });

  it('sends a valid request and follows it until approved', async () => {
    const api = fakeAccessApi({
      createRequest: jest.fn(async () => aRequest()),
      getRequest: jest
        .fn()
        .mockResolvedValueOnce(aRequest())
        .mockResolvedValue(aRequest({ state: 'approved', grant: aGrant() })),
    });
    await renderDialog(api);
    fill('15m', 'backfill the 2nd');
    await waitFor(() =>
      expect(screen.getByTestId('request-state')).toHaveAttribute('data-state', 'pending'),
    );
    expect(api.createRequest).toHaveBeenCalledWith({
      target,
      duration: '15m',
      reason: 'backfill the 2nd',
    });
    await waitFor(() =>
      expect(screen.getByTestId('request-state')).toHaveAttribute('data-state', 'approved'),
    );
    expect(screen.getByTestId('request-state')).toHaveTextContent(/Approved: access granted/);
    expect(api.getRequest).toHaveBeenCalledWith('req-1');
  });

  it('says when the policy approved at once', async () => {
    const api = fakeAccessApi({
      createRequest: jest.fn(async () =>
        aRequest({ state: 'approved', auto_approved: { condition: 'short-dev-runs' }, grant: aGrant() }),
      ),
    });
    await renderDialog(api);
    fill('15m', 'quick fix');
    expect(await screen.findByTestId('request-state')).toHaveTextContent(
      /approved at once by the policy: short-dev-runs/,
    );
  });

  it("shows the policy's refusal", async () => {
    const api = fakeAccessApi({
      createRequest: jest.fn(async () => {
        throw new MeshgateAccessError('refused', 'user:default/carol is in none of the groups that may ask for airflow-dags', {
          code: 'requester_not_allowed',
          status: 403,
        });
      }),
    });
    await renderDialog(api);
    fill('15m', 'backfill');
    const refusal = await screen.findByTestId('request-refused');
    expect(refusal).toHaveTextContent(/in none of the groups that may ask/);
    expect(refusal).toHaveTextContent(/requester_not_allowed/);
  });

  it('says the control plane is down instead of spinning', async () => {
    const api = fakeAccessApi({
      getPolicy: jest.fn(async () => {
        throw new MeshgateAccessError('unavailable', 'no answer within 10 s');
      }),
    });
    await renderInTestApp(
      <TestApiProvider apis={[[meshgateAccessApiRef, api]]}>
        <RequestAccessDialog open target={target} onClose={() => {}} />
      </TestApiProvider>,
    );
    expect(await screen.findByTestId('meshgate-error-unavailable')).toHaveTextContent(
      /control plane is not reachable/,
    );
    expect(screen.queryByTestId('request-submit')).not.toBeInTheDocument();
  });

  it('tells the user to sign in again when the token expired while polling', async () => {
    const api = fakeAccessApi({
      getRequest: jest.fn(async () => {
        throw new MeshgateAccessError('unauthenticated', 'the token expired');
      }),
    });
    await renderDialog(api);
    fill('15m', 'backfill');
    expect(await screen.findByTestId('meshgate-error-unauthenticated')).toHaveTextContent(
      /Sign in to Backstage again/,
    );
    const calls = api.getRequest.mock.calls.length;
    await new Promise(resolve => setTimeout(resolve, 100));
    expect(api.getRequest.mock.calls.length).toBe(calls);
  });

  it('says when nothing in the policy covers the target', async () => {
    const api = fakeAccessApi({ getPolicy: jest.fn(async () => ({ requestable: [] })) });
    await renderInTestApp(
      <TestApiProvider apis={[[meshgateAccessApiRef, api]]}>
        <RequestAccessDialog open target={target} onClose={() => {}} />
      </TestApiProvider>,
    );
    expect(await screen.findByTestId('not-requestable')).toBeInTheDocument();
  });
});
