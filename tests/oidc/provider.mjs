// A real OpenID provider (npm oidc-provider) for the single sign-on tests, on loopback only.
//
// Started by tests/oidc_provider.py as `node provider.mjs`. It listens on 127.0.0.1 on a free
// port and prints {"port": N} on one line; the test then writes its configuration as one
// JSON line on standard input (the node's redirect address is known only once the node has
// started) and the provider prints {"ready": true}. It stops when standard input closes, so
// it never outlives the test that started it.
//
// The configuration:
//   clients: [{client_id, client_secret, redirect_uris, id_token?}]
//     id_token (switches for the tests of refusals): {aud: "..."} sends ID tokens for
//     another audience; {exp_offset: -600} sends them already expired by ten minutes.
//   users: {login: {email, email_verified, name, groups, amr, acr}}
//
// People sign in on a plain form (/interaction/<uid>): a username and, optionally, the
// authentication methods (amr) the provider asserts this time (else the user's own): the
// tests choose who signs in and how.
// Consent is taken as given (a first-party provider), so no second page is shown.

import http from 'node:http';
import readline from 'node:readline';
import { URLSearchParams } from 'node:url';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const KID = 'test-signing-key';
const SCOPES = ['openid', 'email', 'profile', 'groups'];
const MAX_FORM = 4096;

let handler = (req, res) => {
  res.statusCode = 503;
  res.end('not configured yet\n');
};
const server = http.createServer((req, res) => handler(req, res));

function say(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > MAX_FORM) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function loginPage(res, uid, error) {
  res.statusCode = error ? 400 : 200;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider sign-in</title></head>
<body><main><h1>Test provider</h1>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<p><label for="login">Username</label> <input id="login" name="login" autocomplete="off"></p>
<p><label for="amr">Methods used (amr, comma-separated; empty: the user's own)</label>
<input id="amr" name="amr" autocomplete="off"></p>
<button type="submit">Sign in</button>
</form></main></body></html>`);
}

async function configure(config, issuer) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };
  const users = config.users ?? {};
  const tamper = Object.fromEntries(
    (config.clients ?? []).filter((c) => c.id_token).map((c) => [c.client_id, c.id_token]),
  );
  const provider = new Provider(issuer, {
    clients: (config.clients ?? []).map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [jwk] },
    cookies: { keys: ['exchange-test-provider-cookie-key'] },
    scopes: SCOPES,
    claims: {
      // Claims of their own (null), as in the package's defaults, with amr added; and, as
      // large providers do, how and when the person signed in goes in every ID token.
      acr: null,
      amr: null,
      auth_time: null,
      iss: null,
      sid: null,
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Claims of the scopes asked for go in the ID token, which is all the node reads.
    conformIdTokenClaims: false,
    acrValues: ['urn:test:aal1', 'urn:test:aal2'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, id) => {
      const user = users[id];
      if (!user) return undefined;
      return {
        accountId: id,
        claims: async () => ({
          sub: id,
          email: user.email,
          email_verified: user.email_verified ?? true,
          name: user.name ?? id,
          groups: user.groups ?? [],
        }),
      };
    },
    // A first-party provider: every client is granted every scope without a consent page.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(SCOPES.join(' '));
      await grant.save();
      return grant;
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  });

  // The tests' switches: re-sign a client's ID tokens with a changed audience or expiry.
  provider.use(async (ctx, next) => {
    await next();
    const change = tamper[ctx.oidc?.client?.clientId];
    if (ctx.path !== '/token' || ctx.status !== 200 || !change || !ctx.body?.id_token) return;
    const claims = jose.decodeJwt(ctx.body.id_token);
    if (change.aud !== undefined) claims.aud = change.aud;
    if (change.exp_offset !== undefined) {
      const now = Math.floor(Date.now() / 1000);
      claims.exp = now + change.exp_offset;
      claims.iat = claims.exp - 60;
    }
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
        .sign(privateKey),
    };
  });

  return async (req, res) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(req.url.split('?')[0]);
    if (!match) {
      provider.callback()(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET' && !match[2]) {
        loginPage(res, details.uid);
        return;
      }
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const user = users[login];
      if (!user) {
        loginPage(res, details.uid, 'Enter a known username');
        return;
      }
      const amr = (form.get('amr') ?? '').split(',').map((m) => m.trim()).filter(Boolean);
      const result = { login: { accountId: login, amr: amr.length ? amr : (user.amr ?? ['pwd']) } };
      if (user.acr) result.login.acr = user.acr;
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    } catch (error) {
      res.statusCode = 400;
      res.end(`interaction failed: ${error.name}\n`);
    }
  };
}

server.listen(0, '127.0.0.1', () => {
  say({ port: server.address().port });
});

const lines = readline.createInterface({ input: process.stdin });
let configured = false;
lines.on('line', async (line) => {
  if (configured) return;
  configured = true;
  const issuer = `http://127.0.0.1:${server.address().port}`;
  handler = await configure(JSON.parse(line), issuer);
  say({ ready: true, issuer });
});
lines.on('close', () => {
  server.close();
  process.exit(0);
});
