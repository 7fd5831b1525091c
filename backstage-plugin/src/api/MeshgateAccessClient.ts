import { DiscoveryApi, FetchApi } from '@backstage/core-plugin-api';
import { MeshgateAccessError } from './errors';
import {
  AccessGrant,
  AccessPolicy,
  AccessRequest,
  GrantListFilter,
  MeshgateAccessApi,
  NewAccessRequest,
  RequestListFilter,
} from './types';

/** Where Backstage's proxy serves the control plane: `proxy.endpoints['/meshgate']` in app-config.yaml. */
export const DEFAULT_PROXY_PATH = '/meshgate';
/** How long one call may take before the plugin says the control plane is down. */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface MeshgateAccessClientOptions {
  discoveryApi: DiscoveryApi;
  /** Backstage's fetchApi: it adds the signed-in user's token to calls to the backend. */
  fetchApi: FetchApi;
  proxyPath?: string;
  timeoutMs?: number;
}

/**
 * The control plane's access API, reached through Backstage's proxy with the user's own
 * Backstage token (the proxy forwards it: `credentials: forward`). The control plane takes
 * the caller's identity from that token only.
 */
export class MeshgateAccessClient implements MeshgateAccessApi {
  private readonly discoveryApi: DiscoveryApi;
  private readonly fetchApi: FetchApi;
  private readonly proxyPath: string;
  private readonly timeoutMs: number;

  constructor(options: MeshgateAccessClientOptions) {
    this.discoveryApi = options.discoveryApi;
    this.fetchApi = options.fetchApi;
    this.proxyPath = options.proxyPath ?? DEFAULT_PROXY_PATH;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async getPolicy(): Promise<AccessPolicy> {
    return this.call<AccessPolicy>('GET', 'policy');
  }

  async listRequests(filter: RequestListFilter): Promise<AccessRequest[]> {
    const query: Record<RequestListFilter, string> = {
      mine: '?mine=1',
      pending_for_me: '?pending_for_me=1',
      all: '',
    };
    const body = await this.call<{ requests: AccessRequest[] }>(
      'GET',
      `requests${query[filter]}`,
    );
    return body.requests;
  }

  async getRequest(id: string): Promise<AccessRequest> {
    return this.call('GET', `requests/${encodeURIComponent(id)}`);
  }

  async createRequest(request: NewAccessRequest): Promise<AccessRequest> {
    return this.call('POST', 'requests', request);
  }

  async approve(id: string, comment?: string): Promise<AccessRequest> {
    return this.call('POST', `requests/${encodeURIComponent(id)}/approve`, {
      comment: comment ?? '',
    });
  }

  async deny(id: string, comment?: string): Promise<AccessRequest> {
    return this.call('POST', `requests/${encodeURIComponent(id)}/deny`, {
      comment: comment ?? '',
    });
  }

  async cancel(id: string): Promise<AccessRequest> {
    return this.call('POST', `requests/${encodeURIComponent(id)}/cancel`, {});
  }

  async listGrants(filter: GrantListFilter): Promise<AccessGrant[]> {
    const body = await this.call<{ grants: AccessGrant[] }>(
      'GET',
      filter === 'mine' ? 'grants?mine=1' : 'grants',
    );
    return body.grants;
  }

  async revokeGrant(id: string, comment?: string): Promise<AccessGrant> {
    return this.call('POST', `grants/${encodeURIComponent(id)}/revoke`, {
      comment: comment ?? '',
    });
  }

  /** The full URL of an access API path, e.g. `requests?mine=1`. */
  async url(path: string): Promise<string> {
    const base = (await this.discoveryApi.getBaseUrl('proxy')).replace(
      /\/+$/,
      '',
    );
    return `${base}${this.proxyPath}/v1/access/${path}`;
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<T> {
    const url = await this.url(path);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let response: Response;
    try {
      response = await this.fetchApi.fetch(url, {
        method,
        headers:
          body === undefined
            ? { Accept: 'application/json' }
            : { Accept: 'application/json', 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (error) {
      if (controller.signal.aborted) {
        throw new MeshgateAccessError(
          'unavailable',
          `no answer within ${this.timeoutMs / 1000} s`,
        );
      }
      throw new MeshgateAccessError(
        'unavailable',
        `could not connect: ${messageOf(error)}`,
      );
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text().catch(() => '');
    if (response.ok) {
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new MeshgateAccessError(
          'unexpected',
          `${method} ${path}: the answer is not JSON`,
          { status: response.status },
        );
      }
    }
    throw errorFromResponse(response.status, text);
  }
}

/** Maps a failed answer to the error the components show. Exported for tests. */
export function errorFromResponse(
  status: number,
  text: string,
): MeshgateAccessError {
  const apiError = parseApiError(text);
  if (status === 401) {
    return new MeshgateAccessError(
      'unauthenticated',
      apiError?.message ?? 'the token was refused',
      { code: apiError?.code, status },
    );
  }
  // http-proxy-middleware, under Backstage's proxy, answers 504 for a refused or timed-out
  // connection and 500 "Error occurred while trying to proxy" for other socket errors.
  const proxyFailure =
    status === 500 && !apiError && text.startsWith('Error occurred while trying to proxy');
  if (status === 502 || status === 503 || status === 504 || proxyFailure) {
    return new MeshgateAccessError(
      'unavailable',
      apiError?.message ?? `HTTP ${status} from the proxy`,
      { code: apiError?.code, status },
    );
  }
  if (status >= 400 && status < 500 && apiError) {
    return new MeshgateAccessError('refused', apiError.message, {
      code: apiError.code,
      status,
    });
  }
  return new MeshgateAccessError(
    'unexpected',
    apiError ? `${apiError.code}: ${apiError.message}` : `HTTP ${status}`,
    { code: apiError?.code, status },
  );
}

/** `{"error": {"code", "message"}}`, meshgate's error body; anything else gives undefined. */
function parseApiError(
  text: string,
): { code: string; message: string } | undefined {
  try {
    const parsed = JSON.parse(text);
    const error = parsed?.error;
    if (
      error &&
      typeof error.code === 'string' &&
      typeof error.message === 'string'
    ) {
      return { code: error.code, message: error.message };
    }
  } catch {
    // Not JSON: the caller reports the status alone.
  }
  return undefined;
}

/** An error's message, also for errors from another realm (jsdom, iframes) that fail `instanceof Error`. */
function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}
