// Drives openid-client (panva, certified RP) against the provider in two phases:
//   node openid_client_run.mjs start <issuer> <client_id> <secret> <redirect>
//     -> prints {url, verifier, state, nonce}
//   node openid_client_run.mjs finish <issuer> <client_id> <secret> <callback_url> <verifier> <state> <nonce>
//     -> code grant (ID token validated by the library), refresh, userinfo, end-session URL; prints JSON
import * as client from 'openid-client';

const [phase, issuer, clientId, secret, ...rest] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(secret),
  { execute: [client.allowInsecureRequests] });

if (phase === 'start') {
  const [redirect] = rest;
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirect, scope: 'openid profile phone', code_challenge: challenge,
    code_challenge_method: 'S256', state, nonce,
  });
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else {
  const [callback, verifier, state, nonce] = rest;
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const info = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  const logout = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token });
  console.log(JSON.stringify({
    sub: claims.sub, iss: claims.iss, acr: claims.acr, refreshed: refreshed.refresh_token !== tokens.refresh_token,
    userinfo: info, logout: logout.href,
  }));
}
