// The baseline of bench/oidc_flows.py: panva's certified `oidc-provider` (npm), configured for the
// same flows as ours — one confidential client with client_secret_basic, the authorization code
// flow with PKCE S256 required, refresh tokens rotated on every use, client credentials,
// introspection and revocation, ES256 ID tokens. The bench installs the package into bench/.node
// (not committed) and starts this file with node:
//
//   PORT=... CLIENT_SECRET=... REDIRECT_URI=... node bench/oidc_provider_baseline.mjs
//
// Two things differ from a production set-up, both in the baseline's favour, and the bench says
// so in its output: storage is an in-process Map (the package's own MemoryAdapter is an LRU of
// 1,000 entries, too small for the bench's codes and refresh families), and the login and
// consent interaction finishes at once for a fixed account (ours is an SSO cookie).
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const redirect = process.env.REDIRECT_URI;
const secret = process.env.CLIENT_SECRET;

const stores = new Map();

class MapAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }

  static grants = new Map(); // grantId -> [[model name, id], ...]

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    this.store.set(id, { payload, expiresAt });
    if (payload.grantId) {
      const members = MapAdapter.grants.get(payload.grantId) || [];
      members.push([this.name, id]);
      MapAdapter.grants.set(payload.grantId, members);
    }
    if (payload.uid && this.name === 'Session') stores.get('Session').set(`uid:${payload.uid}`, { payload: id });
  }

  async find(id) {
    const found = this.store.get(id);
    if (!found) return undefined;
    if (found.expiresAt !== undefined && found.expiresAt < Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return found.payload;
  }

  async findByUid(uid) {
    const id = this.store.get(`uid:${uid}`);
    return id ? this.find(id.payload) : undefined;
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const found = this.store.get(id);
    if (found) found.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [name, id] of MapAdapter.grants.get(grantId) || []) stores.get(name)?.delete(id);
    MapAdapter.grants.delete(grantId);
  }
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [
    {
      client_id: 'bench',
      client_secret: secret,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [redirect],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      scope: 'openid profile',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
  scopes: ['openid', 'profile'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: false },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.proxy = false;

// The interaction finishes at once: log the fixed account in, then grant what was asked.
async function interaction(req, res) {
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: 'bench-person' } });
      return;
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  } catch (error) {
    res.statusCode = 500;
    res.end(String(error));
  }
}

const callback = provider.callback();
createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) return interaction(req, res);
  return callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
