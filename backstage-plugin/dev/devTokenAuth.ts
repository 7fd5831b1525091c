import {
  ApiRef,
  BackstageIdentityApi,
  BackstageIdentityResponse,
  createApiRef,
  ProfileInfo,
  ProfileInfoApi,
  SessionApi,
  SessionState,
} from '@backstage/core-plugin-api';
import { Observable } from '@backstage/types';

type DevAuth = ProfileInfoApi & BackstageIdentityApi & SessionApi;

export const devTokenAuthApiRef: ApiRef<DevAuth> = createApiRef<DevAuth>({
  id: 'plugin.meshgate-access.dev-token-auth',
});

export const DEV_TOKEN_KEY = 'meshgate.devToken';

/** The claims of a Backstage user token that name the user: `sub` and `ent`. */
function claimsOf(token: string): { sub?: string; ent?: string[] } {
  const payload = token.split('.')[1] ?? '';
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(json);
}

/**
 * Dev app only: signs in with a Backstage user token given to it (config `meshgate.devToken`,
 * `?meshgate_token=` in the URL, or localStorage `meshgate.devToken`; without any, signing in fails), so a browser test can be
 * carol in one page and alice in another. The token is only read to name the user in the UI;
 * the control plane verifies it.
 */
export class DevTokenAuth implements DevAuth {
  constructor(private readonly configToken?: string) {}

  private token(): string | undefined {
    const fromUrl = new URLSearchParams(window.location.search).get('meshgate_token');
    if (fromUrl) window.localStorage.setItem(DEV_TOKEN_KEY, fromUrl);
    return (
      fromUrl ||
      window.localStorage.getItem(DEV_TOKEN_KEY) ||
      this.configToken ||
      undefined
    );
  }

  async getBackstageIdentity(): Promise<BackstageIdentityResponse | undefined> {
    const token = this.token();
    if (!token) return undefined;
    window.localStorage.setItem(DEV_TOKEN_KEY, token);
    const claims = claimsOf(token);
    const userEntityRef = claims.sub ?? 'user:default/unknown';
    return {
      token,
      identity: {
        type: 'user',
        userEntityRef,
        ownershipEntityRefs: claims.ent ?? [userEntityRef],
      },
    };
  }

  async getProfile(): Promise<ProfileInfo | undefined> {
    const identity = await this.getBackstageIdentity();
    return identity ? { displayName: identity.identity.userEntityRef } : undefined;
  }

  async signIn(): Promise<void> {}

  async signOut(): Promise<void> {
    window.localStorage.removeItem(DEV_TOKEN_KEY);
  }

  sessionState$(): Observable<SessionState> {
    return {
      subscribe: () => ({ unsubscribe: () => {}, closed: false }),
      [Symbol.observable]() {
        return this;
      },
    } as unknown as Observable<SessionState>;
  }
}
