// A real, independently written OAuth 2.0 / OIDC server (panva/oidc-provider) for end-to-end
// checks of the SDK. Test-only: in-memory storage, throwaway keys, fixed test client secrets.
//
//   node server.mjs <port>        (or PORT=<port> node server.mjs)
//   ACCESS_TTL=<seconds>          access-token lifetime, default 300
//
// stdout carries exactly one line, `READY <issuer>`, once listening; everything else goes to
// stderr so the harness can read stdout as a protocol.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

// oidc-provider prints its development notices with console.info, i.e. on stdout.
console.info = console.error;

const port = Number(process.argv[2] ?? process.env.PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node server.mjs <port>  (or set PORT)');
  process.exit(2);
}
const accessTtl = Number(process.env.ACCESS_TTL ?? 300);
if (!Number.isInteger(accessTtl) || accessTtl <= 0) {
  console.error(`ACCESS_TTL must be a positive integer, got ${process.env.ACCESS_TTL}`);
  process.exit(2);
}

const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;
const redirectUri = 'http://127.0.0.1/callback';

const client = (clientId, authMethod) => ({
  client_id: clientId,
  client_secret: 'sdk-client-secret-0123456789',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [redirectUri],
  post_logout_redirect_uris: ['http://127.0.0.1/logged-out'],
  token_endpoint_auth_method: authMethod,
});

// A fresh signing key per run: nothing persists, and it avoids the shared development keys.
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
  format: 'jwk',
});

const provider = new Provider(issuer, {
  clients: [
    client('sdk-client', 'client_secret_post'),
    client('sdk-client-basic', 'client_secret_basic'),
  ],
  responseTypes: ['code'],
  jwks: { keys: [{ ...signingKey, kid: 'test-rs256', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: ['test-only-cookie-signing-key-not-a-secret'] },
  // Any login is accepted (devInteractions); the account id becomes `sub`.
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  features: {
    // Login and consent as plain HTML forms, so a headless client can drive them.
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // The SDK under test always sends S256; requiring it makes a missing challenge an error.
  pkce: { required: () => true },
  // Without this a refresh token needs scope offline_access plus prompt=consent; the SDK's
  // subject is token refresh, so every code grant gets one.
  issueRefreshToken: (ctx, grantClient) => grantClient.grantTypeAllowed('refresh_token'),
  // Every refresh rotates; replaying a rotated token revokes the whole grant.
  rotateRefreshToken: true,
  // The default 15 s tolerance would keep expired access tokens working past ACCESS_TTL.
  clockTolerance: 0,
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 24 * 60 * 60,
    Interaction: 10 * 60,
    Session: 24 * 60 * 60,
    Grant: 24 * 60 * 60,
  },
});

provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

const server = createServer(provider.callback());
server.on('error', (err) => {
  console.error(`cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  process.stdout.write(`READY ${issuer}\n`);
});

const shutdown = () => {
  // Keep-alive connections would otherwise hold close() open.
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
