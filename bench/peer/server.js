// Benchmark peer: node-oidc-provider set up for the same two scenarios that the
// Valet benchmark drives (client_credentials with a signed JWT access token, and
// introspection of an opaque token). See README.md in this folder.
//
// Environment:
//   PORT          port to listen on, on 127.0.0.1 (required)
//   ALG           JWS algorithm of the JWT access tokens: RS256 (default), ES256 or EdDSA
//   WORKERS       number of cluster workers (default 2)
//   OPAQUE_TOKEN  value of the pre-seeded opaque access token (default: fixed value below)
//
// stdout carries only two lines, both from the primary process:
//   OPAQUE_TOKEN <value>
//   READY <port>
// Everything from the workers (library notices, errors) goes to stderr.

import cluster from 'node:cluster';
import crypto from 'node:crypto';
import process from 'node:process';

const HOST = '127.0.0.1';
const PORT = Number.parseInt(process.env.PORT ?? '', 10);
const ALG = process.env.ALG || 'RS256';
const WORKERS = Number.parseInt(process.env.WORKERS || '2', 10);

const CLIENT_ID = 'bench';
const CLIENT_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const SCOPE = 'read:contacts';
const JWT_RESOURCE = 'https://contacts.example.com';
const OPAQUE_RESOURCE = 'https://opaque.example.com';
// 43 base64url characters, the shape of the provider's own opaque tokens (256 bits).
const DEFAULT_OPAQUE_TOKEN = 'benchOpaqueIntrospectionToken0123456789abcd';
const OPAQUE_TOKEN = process.env.OPAQUE_TOKEN || DEFAULT_OPAQUE_TOKEN;
const TOKEN_TTL = 3600; // seconds, like Valet's default access_token_ttl = "1h"
const OPAQUE_TTL = 7 * 24 * 3600; // the seeded token outlives any benchmark run

function fail(msg) {
  process.stderr.write(`[peer] ERROR: ${msg}\n`);
  process.exit(2);
}

if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) fail('PORT must be set to a TCP port');
if (!Number.isInteger(WORKERS) || WORKERS < 1) fail('WORKERS must be a positive integer');
if (!['RS256', 'ES256', 'EdDSA'].includes(ALG)) fail(`ALG must be RS256, ES256 or EdDSA (got ${ALG})`);

// One signing key per run, made in the primary and handed to every worker, so any
// worker's tokens verify against the same JWKS.
function generateSigningJwk(alg) {
  let pair;
  switch (alg) {
    case 'RS256':
      pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }); // Valet: RSA-2048
      break;
    case 'ES256':
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      break;
    case 'EdDSA':
      pair = crypto.generateKeyPairSync('ed25519');
      break;
    default:
      throw new Error(`unsupported alg ${alg}`);
  }
  const jwk = pair.privateKey.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `bench-${alg.toLowerCase()}` };
}

if (cluster.isPrimary) {
  const jwk = generateSigningJwk(ALG);
  // The seeded token's iat is fixed here too, so every worker stores (and
  // introspects to) a byte-identical payload.
  const env = {
    PEER_SIGNING_JWK: JSON.stringify(jwk),
    OPAQUE_TOKEN,
    PEER_OPAQUE_IAT: String(Math.floor(Date.now() / 1000)),
  };

  // Workers' stdout and stderr both go to our stderr; stdout is kept for the
  // two protocol lines.
  cluster.setupPrimary({ silent: true });

  let listening = 0;
  let ready = false;
  let stopping = false;
  let exitCode = 0;

  const stop = (code) => {
    stopping = true;
    exitCode = Math.max(exitCode, code);
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    // Give workers a moment to go, then leave regardless.
    setTimeout(() => process.exit(exitCode), 500).unref();
    if (Object.keys(cluster.workers).length === 0) process.exit(exitCode);
  };

  cluster.on('fork', (w) => {
    w.process.stdout.pipe(process.stderr);
    w.process.stderr.pipe(process.stderr);
  });
  cluster.on('listening', () => {
    listening += 1;
    if (listening === WORKERS && !ready) {
      ready = true;
      process.stdout.write(`OPAQUE_TOKEN ${OPAQUE_TOKEN}\n`);
      process.stdout.write(`READY ${PORT}\n`);
    }
  });
  cluster.on('exit', (w, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers).length === 0) process.exit(exitCode);
      return;
    }
    // A benchmark must not go on silently with fewer workers than asked for.
    process.stderr.write(`[peer] worker ${w.process.pid} exited (code ${code}, signal ${signal}); stopping\n`);
    stop(1);
  });

  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));

  for (let i = 0; i < WORKERS; i += 1) cluster.fork(env);
} else {
  // A worker whose primary has gone should not linger.
  process.on('disconnect', () => process.exit(0));
  await runWorker();
}

async function runWorker() {
  const { default: Provider } = await import('oidc-provider');

  const jwk = JSON.parse(process.env.PEER_SIGNING_JWK);
  const opaqueToken = process.env.OPAQUE_TOKEN;
  const opaqueIat = Number.parseInt(process.env.PEER_OPAQUE_IAT, 10);

  const resourceServers = {
    [JWT_RESOURCE]: {
      scope: SCOPE,
      accessTokenFormat: 'jwt',
      accessTokenTTL: TOKEN_TTL,
      jwt: { sign: { alg: ALG } },
    },
    [OPAQUE_RESOURCE]: {
      scope: SCOPE,
      accessTokenFormat: 'opaque',
      accessTokenTTL: TOKEN_TTL,
    },
  };

  const provider = new Provider(`http://${HOST}:${PORT}`, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
      // Unused by these scenarios, but client validation requires it to match a
      // key in the keystore, which holds only the ALG key.
      id_token_signed_response_alg: ALG,
    }],
    jwks: { keys: [jwk] },
    scopes: [SCOPE],
    // The stock in-memory adapter (a per-process LRU), passed explicitly only to
    // avoid its start-up warning. See README.md for why it suffices.
    adapter: await memoryAdapter(),
    cookies: { keys: ['bench-peer-cookie-key-not-used-by-these-scenarios'] },
    clientBasedCORS: () => false,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Any authenticated client may introspect (as in the default policy,
        // minus its "you SHOULD change this" notice).
        allowedPolicy: async () => true,
      },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => JWT_RESOURCE,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const info = resourceServers[resourceIndicator];
          if (!info) throw new Provider.errors.InvalidTarget();
          return info;
        },
      },
    },
    ttl: {
      AccessToken: TOKEN_TTL,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL,
    },
  });

  // Quiet: no per-request logging is configured, and expected client errors
  // (4xx) are not logged by Koa either. Unexpected 5xx still reach stderr.

  // Seed the one opaque token that the introspection scenario uses. Every worker
  // stores the same token (same value, same payload) in its own memory store, so
  // whichever worker a connection lands on answers {"active": true}.
  const client = await provider.Client.find(CLIENT_ID);
  if (!client) throw new Error('bench client not found');
  const token = new provider.ClientCredentials({
    client,
    scope: SCOPE,
    iat: opaqueIat,
    exp: opaqueIat + OPAQUE_TTL,
  });
  token.resourceServer = new provider.ResourceServer(
    OPAQUE_RESOURCE,
    resourceServers[OPAQUE_RESOURCE],
  );
  // What token.generateTokenId() would set for an opaque resource server; the
  // value is fixed instead of random.
  token.format = 'opaque';
  token.jti = opaqueToken;
  const saved = await token.save();
  if (saved !== opaqueToken) throw new Error(`seeded token mismatch: ${saved}`);
  const found = await provider.ClientCredentials.find(opaqueToken);
  if (!found?.isValid) throw new Error('seeded opaque token cannot be found');

  provider.listen(PORT, HOST);
}

// The library's own memory adapter factory, without the warning that the
// default (implicit) one prints.
async function memoryAdapter() {
  const { createMemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');
  return createMemoryAdapter(0);
}
