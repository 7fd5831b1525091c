import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { renderInTestApp, TestApiProvider } from '@backstage/test-utils';
import { MeshgateAccessError, meshgateAccessApiRef } from '../../api';
import { AccessRequestsPage } from './AccessRequestsPage';
import { aGrant, aRequest, fakeAccessApi } from '../../testing/fakeAccessApi';

async function renderPage(api: ReturnType<typeof fakeAccessApi>) {
  await renderInTestApp(
    <TestApiProvider apis={[[meshgateAccessApiRef, api]]}>
      <AccessRequestsPage refreshIntervalMs={0} />
    </TestApiProvider>,
  );
}

function owners() {
  return fakeAccessApi({
    listRequests: jest.fn(async filter =>
      filter === 'pending_for_me'
        ? [aRequest()]
        : [aRequest({ id: 'req-7', requester: 'user:default/alice', state: 'pending' })],
    ),
    listGrants: jest.fn(async filter =>
      filter === 'mine'
        ? []
        : [aGrant({ id: 'grant-9', user: 'user:default/dave' })],
    ),
  });
}

describe('AccessRequestsPage', () => {
  it('lists requests waiting for me, mine and grants', async () => {
    await renderPage(owners());
    const row = await screen.findByTestId('pending-row-req-1');
    expect(row).toHaveTextContent('user:default/carol');
    expect(row).toHaveTextContent('airflow.dag etl_daily');
    expect(row).toHaveTextContent('backfill the 2nd');
    expect(screen.getByTestId('my-request-state-req-7')).toHaveTextContent('pending');
    expect(screen.getByTestId('grant-row-grant-9')).toHaveTextContent(/user:default\/dave.*m left/);
  });

  it('approves with a comment', async () => {
    const api = owners();
    await renderPage(api);
    fireEvent.click(await screen.findByRole('button', { name: 'Approve req-1' }));
    fireEvent.change(screen.getByTestId('action-comment'), { target: { value: 'go ahead' } });
    fireEvent.click(screen.getByTestId('action-confirm'));
    expect(await screen.findByTestId('access-notice')).toHaveTextContent(
      'Request req-1 approved: now approved.',
    );
    expect(api.approve).toHaveBeenCalledWith('req-1', 'go ahead');
  });

  it('denies with a comment', async () => {
    const api = owners();
    await renderPage(api);
    fireEvent.click(await screen.findByRole('button', { name: 'Deny req-1' }));
    fireEvent.change(screen.getByTestId('action-comment'), { target: { value: 'not now' } });
    fireEvent.click(screen.getByTestId('action-confirm'));
    await waitFor(() => expect(api.deny).toHaveBeenCalledWith('req-1', 'not now'));
  });

  it('shows the refusal when the request was already decided', async () => {
    const api = owners();
    api.approve.mockRejectedValue(
      new MeshgateAccessError('refused', 'request req-1 is already decided', {
        code: 'already_decided',
        status: 409,
      }),
    );
    await renderPage(api);
    fireEvent.click(await screen.findByRole('button', { name: 'Approve req-1' }));
    fireEvent.click(screen.getByTestId('action-confirm'));
    expect(await screen.findByTestId('action-refused')).toHaveTextContent(
      'request req-1 is already decided (already_decided)',
    );
  });

  it('revokes a grant', async () => {
    const api = owners();
    await renderPage(api);
    fireEvent.click(await screen.findByRole('button', { name: 'Revoke grant-9' }));
    fireEvent.click(screen.getByTestId('action-confirm'));
    expect(await screen.findByTestId('access-notice')).toHaveTextContent('Grant grant-9 revoked.');
    expect(api.revokeGrant).toHaveBeenCalledWith('grant-9', '');
  });

  it('cancels my pending request', async () => {
    const api = owners();
    await renderPage(api);
    fireEvent.click(await screen.findByRole('button', { name: 'Cancel req-7' }));
    await waitFor(() => expect(api.cancel).toHaveBeenCalledWith('req-7'));
  });

  it('says so when nothing waits', async () => {
    await renderPage(fakeAccessApi());
    expect(await screen.findByTestId('pending-empty')).toBeInTheDocument();
    expect(screen.getByTestId('mine-empty')).toBeInTheDocument();
  });

  it.each([
    ['unavailable', /control plane is not reachable/],
    ['unauthenticated', /Sign in to Backstage again/],
  ] as const)('explains a %s control plane', async (kind, text) => {
    const api = fakeAccessApi({
      listRequests: jest.fn(async () => {
        throw new MeshgateAccessError(kind, 'x');
      }),
    });
    await renderPage(api);
    expect(await screen.findByTestId(`meshgate-error-${kind}`)).toHaveTextContent(text);
    expect(screen.queryByRole('progressbar')).not.toBeInTheDocument();
    expect(within(screen.getByTestId(`meshgate-error-${kind}`)).queryAllByRole('button')).toHaveLength(
      kind === 'unavailable' ? 1 : 0,
    );
  });
});
