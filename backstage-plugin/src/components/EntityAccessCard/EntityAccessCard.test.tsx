import { fireEvent, screen, within } from '@testing-library/react';
import { mockApis, renderInTestApp, TestApiProvider } from '@backstage/test-utils';
import { identityApiRef } from '@backstage/core-plugin-api';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { Entity } from '@backstage/catalog-model';
import { MeshgateAccessError, meshgateAccessApiRef } from '../../api';
import { EntityAccessCard } from './EntityAccessCard';
import { aGrant, aRequest, fakeAccessApi } from '../../testing/fakeAccessApi';

const etl: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: { name: 'etl', annotations: { 'meshgate.io/airflow-dag': 'etl_daily' } },
  spec: { owner: 'group:default/data-eng', type: 'pipeline' },
  relations: [{ type: 'ownedBy', targetRef: 'group:default/data-eng' }],
};

const carol = mockApis.identity({
  userEntityRef: 'user:default/carol',
  ownershipEntityRefs: ['user:default/carol', 'group:default/analysts'],
});
const alice = mockApis.identity({
  userEntityRef: 'user:default/alice',
  ownershipEntityRefs: ['user:default/alice', 'group:default/data-eng'],
});

async function renderCard(
  api: ReturnType<typeof fakeAccessApi>,
  identity = carol,
  entity: Entity = etl,
) {
  await renderInTestApp(
    <TestApiProvider apis={[[meshgateAccessApiRef, api], [identityApiRef, identity]]}>
      <EntityProvider entity={entity}>
        <EntityAccessCard pollIntervalMs={20} />
      </EntityProvider>
    </TestApiProvider>,
  );
}

const verdictId = 'access-verdict-airflow.dag/etl_daily';

describe('EntityAccessCard', () => {
  it('shows a non-owner that they are denied, why, and offers a request', async () => {
    const api = fakeAccessApi();
    await renderCard(api);
    const verdict = await screen.findByTestId(verdictId);
    expect(verdict).toHaveAttribute('data-allowed', 'false');
    expect(verdict).toHaveTextContent(/owned by group:default\/data-eng/);
    expect(screen.getByTestId('access-owners')).toHaveTextContent('group:default/data-eng');
    expect(screen.getByTestId('access-no-grants')).toBeInTheDocument();
    fireEvent.click(screen.getByRole('button', { name: 'Request access to airflow.dag etl_daily' }));
    expect(await screen.findByTestId('request-duration')).toBeInTheDocument();
  });

  it('shows an owner as allowed, without a request button', async () => {
    await renderCard(fakeAccessApi(), alice);
    const verdict = await screen.findByTestId(verdictId);
    expect(verdict).toHaveAttribute('data-allowed', 'true');
    expect(verdict).toHaveTextContent(/you are in group:default\/data-eng, which owns it/);
    expect(screen.queryByTestId('request-access-airflow.dag/etl_daily')).not.toBeInTheDocument();
  });

  it('shows a grant with its time left', async () => {
    const api = fakeAccessApi({
      listGrants: jest.fn(async () => [aGrant()]),
    });
    await renderCard(api);
    const verdict = await screen.findByTestId(verdictId);
    expect(verdict).toHaveAttribute('data-allowed', 'true');
    expect(verdict).toHaveTextContent(/grant grant-1 \((14|15)m left\)/);
    const row = screen.getByTestId('access-grant-grant-1');
    expect(within(row).getByText('user:default/carol')).toBeInTheDocument();
    expect(within(row).getByText(/m left/)).toBeInTheDocument();
  });

  it('says a request is waiting instead of offering another', async () => {
    const api = fakeAccessApi({ listRequests: jest.fn(async () => [aRequest()]) });
    await renderCard(api);
    expect(await screen.findByTestId(verdictId)).toHaveTextContent(/req-1 is waiting for approval/);
    expect(screen.queryByTestId('request-access-airflow.dag/etl_daily')).not.toBeInTheDocument();
  });

  it('says the control plane is down, with a retry that works', async () => {
    const api = fakeAccessApi({
      listGrants: jest
        .fn()
        .mockRejectedValueOnce(new MeshgateAccessError('unavailable', 'HTTP 504 from the proxy'))
        .mockResolvedValue([]),
    });
    await renderCard(api);
    const error = await screen.findByTestId('meshgate-error-unavailable');
    expect(error).toHaveTextContent(/not reachable right now \(HTTP 504 from the proxy\)/);
    fireEvent.click(within(error).getByRole('button', { name: 'Retry' }));
    expect(await screen.findByTestId(verdictId)).toBeInTheDocument();
  });

  it('asks to sign in again when the token expired', async () => {
    const api = fakeAccessApi({
      listRequests: jest.fn(async () => {
        throw new MeshgateAccessError('unauthenticated', 'the token expired', { status: 401 });
      }),
    });
    await renderCard(api);
    const error = await screen.findByTestId('meshgate-error-unauthenticated');
    expect(error).toHaveTextContent(/Sign in to Backstage again/);
    expect(within(error).queryByRole('button', { name: 'Retry' })).not.toBeInTheDocument();
  });

  it('says when meshgate protects nothing on the entity', async () => {
    const api = fakeAccessApi();
    await renderCard(api, carol, { ...etl, metadata: { name: 'plain' } });
    expect(await screen.findByTestId('access-unprotected')).toBeInTheDocument();
    expect(api.listGrants).not.toHaveBeenCalled();
  });
});
