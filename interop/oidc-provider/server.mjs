// Logto-shaped OpenID Connect identity provider for grpcjwt interop tests.
//
// Built on the npm package `oidc-provider` (the library Logto is built on).
// Serves, on one plain-HTTP port bound to 127.0.0.1:
//   /oidc/...   the provider (issuer http://127.0.0.1:PORT/oidc)
//   /admin/...  test-only controls: key rotation, JWKS fault injection, stats
//
// Environment:
//   PORT    port to listen on (default 0 = pick a free one)
//   ALG     JWS algorithm of the access-token signing key (default ES384, as
//           Logto); RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512
//           EdDSA (Ed25519 key)
//   AT_TTL  access token lifetime in seconds (default 600)
//
// When ready, prints exactly one JSON line on stdout:
//   {"issuer":...,"discovery":...,"token_endpoint":...,"jwks_uri":...,
//    "admin":...,"port":...,"alg":...,"kids":[...],"pid":...}
// Everything else (oidc-provider notices, request errors) goes to stderr.
// Exits 0 on SIGTERM / SIGINT.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints its notices with console.info (stdout); keep stdout
// reserved for the single ready line.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { default: Provider, errors } = await import('oidc-provider');

const MOUNT = '/oidc';
const ADMIN = '/admin';
const RESOURCES = {
  'https://api.example.test': 'read:orders write:orders',
  'https://other.example.test': 'read:orders write:orders',
};
const CLIENTS = [
  {
    client_id: 'm2m-client',
    client_secret: 'm2m-secret',
    scope: 'read:orders write:orders',
  },
  {
    client_id: 'other-client',
    client_secret: 'other-secret',
    scope: 'read:orders write:orders',
  },
];

function envInt(name, def) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const PORT = envInt('PORT', 0);
const AT_TTL = envInt('AT_TTL', 600) || 600;
const ALG = process.env.ALG || 'ES384';

// generateSigningKey returns a private JWK (with kid, alg, use) for ALG.
function generateSigningKey(alg) {
  let type;
  let opts = {};
  switch (alg) {
    case 'RS256': case 'RS384': case 'RS512':
    case 'PS256': case 'PS384': case 'PS512':
      type = 'rsa';
      opts = { modulusLength: 2048 };
      break;
    case 'ES256': type = 'ec'; opts = { namedCurve: 'P-256' }; break;
    case 'ES384': type = 'ec'; opts = { namedCurve: 'P-384' }; break;
    case 'ES512': type = 'ec'; opts = { namedCurve: 'P-521' }; break;
    case 'EdDSA': type = 'ed25519'; break; // oidc-provider 8.x knows no 'Ed25519' JWS alg name
    default:
      throw new Error(`unsupported ALG ${JSON.stringify(alg)}`);
  }
  const { privateKey } = crypto.generateKeyPairSync(type, opts);
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk,
    kid: crypto.randomBytes(12).toString('base64url'),
    alg,
    use: 'sig',
  };
}

// ---- mutable state ---------------------------------------------------------

let issuer; // set once listening
let keys = [generateSigningKey(ALG)]; // private JWKs, newest first
let signingKid = keys[0].kid;
let current; // { provider, callback } of the current Provider; replaced on rotation
let jwksFault = 'none'; // none | 500 | hang | garbage
const hung = new Set(); // responses held open by the 'hang' fault
const stats = {
  jwks_requests: 0,
  jwks_requests_by_mode: {
    none: 0, 500: 0, hang: 0, garbage: 0,
  },
  discovery_requests: 0,
  token_requests: 0,
  rotations: 0,
};

// buildProvider makes a fresh Provider with the same issuer and clients and
// the current key set. oidc-provider fixes its keystore at construction, so
// key rotation swaps the instance behind the (unchanged) HTTP server.
function buildProvider() {
  const kid = signingKid;
  const p = new Provider(issuer, {
    clients: CLIENTS.map((c) => ({
      ...c,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic', // also accepts client_secret_post
    })),
    jwks: { keys: keys.map((k) => ({ ...k })) },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      id_token_signed_response_alg: ALG,
      token_endpoint_auth_method: 'client_secret_basic',
    },
    enabledJWA: {
      idTokenSigningAlgValues: [ALG],
    },
    cookies: { keys: ['interop-cookie-key-not-secret'] },
    scopes: ['openid', 'read:orders', 'write:orders'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // No resource => opaque token (as Logto); resource => JWT.
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const scope = RESOURCES[resourceIndicator];
          if (scope === undefined) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            scope,
            audience: resourceIndicator,
            accessTokenTTL: AT_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: ALG, kid } },
          };
        },
      },
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || AT_TTL,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL || AT_TTL,
      Grant: 600,
      Interaction: 600,
      Session: 600,
      IdToken: 600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  p.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  p.on('grant.error', (_ctx, err) => console.error('oidc-provider grant.error:', err.message, err.error_description || ''));
  return { provider: p, callback: p.callback() };
}

function currentKids() {
  return keys.map((k) => k.kid);
}

function rotate(mode) {
  switch (mode) {
    case 'grace': {
      const k = generateSigningKey(ALG);
      keys = [k, ...keys];
      signingKid = k.kid;
      break;
    }
    case 'finish':
      keys = keys.filter((k) => k.kid === signingKid);
      break;
    case 'hard': {
      const k = generateSigningKey(ALG);
      keys = [k];
      signingKid = k.kid;
      break;
    }
    default:
      return false;
  }
  current = buildProvider(); // build first, then swap: never a half-built instance
  stats.rotations += 1;
  return true;
}

// ---- HTTP plumbing ---------------------------------------------------------

function sendJSON(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

function handleAdmin(req, res, url) {
  const path = url.pathname.slice(ADMIN.length);
  const mode = url.searchParams.get('mode');
  if (path === '/rotate') {
    if (req.method !== 'POST') return sendJSON(res, 405, { error: 'use POST' });
    if (!rotate(mode)) return sendJSON(res, 400, { error: 'mode must be grace, finish or hard' });
    return sendJSON(res, 200, { mode, kids: currentKids(), signing_kid: signingKid });
  }
  if (path === '/jwks-fault') {
    if (req.method !== 'POST') return sendJSON(res, 405, { error: 'use POST' });
    if (!['500', 'hang', 'garbage', 'none'].includes(mode)) {
      return sendJSON(res, 400, { error: 'mode must be 500, hang, garbage or none' });
    }
    jwksFault = mode;
    return sendJSON(res, 200, { jwks_fault: jwksFault, hanging: hung.size });
  }
  if (path === '/stats') {
    if (req.method !== 'GET') return sendJSON(res, 405, { error: 'use GET' });
    return sendJSON(res, 200, {
      ...stats,
      jwks_fault: jwksFault,
      hanging: hung.size,
      kids: currentKids(),
      signing_kid: signingKid,
      alg: ALG,
    });
  }
  return sendJSON(res, 404, { error: 'unknown admin endpoint' });
}

// Returns true when the fault injector answered (or parked) the request.
function jwksFaultHandled(req, res) {
  stats.jwks_requests += 1;
  stats.jwks_requests_by_mode[jwksFault] += 1;
  switch (jwksFault) {
    case '500':
      sendJSON(res, 500, { error: 'server_error', error_description: 'injected JWKS fault' });
      return true;
    case 'garbage': {
      const body = '<html>this is not a JSON Web Key Set {{{';
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return true;
    }
    case 'hang':
      // Never answer; forget the response when the client gives up.
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return true;
    default:
      return false;
  }
}

let jwksPath; // pathname of the advertised jwks_uri (e.g. /oidc/jwks)
let discoveryPath;
let tokenPath;

const server = http.createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url, 'http://127.0.0.1');
  } catch {
    return sendJSON(res, 400, { error: 'bad request target' });
  }
  const { pathname } = url;

  if (pathname === ADMIN || pathname.startsWith(`${ADMIN}/`)) {
    return handleAdmin(req, res, url);
  }

  if (pathname === MOUNT || pathname.startsWith(`${MOUNT}/`)) {
    if (pathname === jwksPath && jwksFaultHandled(req, res)) return undefined;
    if (pathname === discoveryPath) stats.discovery_requests += 1;
    if (pathname === tokenPath) stats.token_requests += 1;
    // Mount the provider under /oidc: it derives its mount path from
    // req.originalUrl minus req.url.
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
    return current.callback(req, res);
  }

  return sendJSON(res, 404, { error: 'not found' });
});

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  const base = `http://127.0.0.1:${port}`;
  issuer = `${base}${MOUNT}`;
  try {
    current = buildProvider();
  } catch (err) {
    console.error('failed to start oidc-provider:', err);
    process.exit(1);
  }
  const p = current.provider;
  const jwksUri = p.urlFor('jwks');
  const tokenEndpoint = p.urlFor('token');
  const discovery = p.urlFor('discovery');
  jwksPath = new URL(jwksUri).pathname;
  tokenPath = new URL(tokenEndpoint).pathname;
  discoveryPath = new URL(discovery).pathname;
  process.stdout.write(`${JSON.stringify({
    issuer,
    discovery,
    token_endpoint: tokenEndpoint,
    jwks_uri: jwksUri,
    admin: `${base}${ADMIN}`,
    port,
    alg: ALG,
    kids: currentKids(),
    pid: process.pid,
  })}\n`);
});

server.on('error', (err) => {
  console.error('http server error:', err);
  process.exit(1);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`received ${signal}, shutting down`);
  for (const res of hung) res.destroy();
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
