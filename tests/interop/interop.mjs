// Valet against stock relying-party libraries: openid-client v6 and oauth4webapi v3 (panva),
// at their defaults except that http:// is allowed (the server runs on 127.0.0.1), plus jose as
// a resource server's JWT verifier. run.sh starts the server, provisions it and passes the
// details below in the environment. Each check prints PASS, FAIL or SKIP with its name; the
// process exits 1 if any check failed.

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import * as client from 'openid-client'
import * as oauth from 'oauth4webapi'
import * as jose from 'jose'
import { Browser, FINISHED, signInAndAllow, submitForm } from './browser.mjs'

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback
  if (v === undefined) {
    console.error(`interop.mjs: ${name} is not set (run it through run.sh)`)
    process.exit(2)
  }
  return v
}

const ISSUER = new URL(env('INTEROP_ISSUER'))
const USER = {
  username: env('INTEROP_USERNAME'),
  password: env('INTEROP_PASSWORD'),
  email: env('INTEROP_USER_EMAIL'),
  name: env('INTEROP_USER_NAME'),
}
const WEB = {
  id: env('INTEROP_WEB_CLIENT_ID'),
  secret: env('INTEROP_WEB_CLIENT_SECRET'),
  redirectUri: env('INTEROP_WEB_REDIRECT_URI'),
  postLogoutRedirectUri: env('INTEROP_WEB_POST_LOGOUT_REDIRECT_URI', ''),
}
const SPA = { id: env('INTEROP_SPA_CLIENT_ID'), redirectUri: env('INTEROP_SPA_REDIRECT_URI') }
const SERVICE = { id: env('INTEROP_SERVICE_CLIENT_ID'), secret: env('INTEROP_SERVICE_CLIENT_SECRET') }
const DEVICE = { id: env('INTEROP_DEVICE_CLIENT_ID'), secret: env('INTEROP_DEVICE_CLIENT_SECRET') }
const API = { identifier: env('INTEROP_API'), scope: env('INTEROP_API_SCOPE') }
const PKJWT = { id: env('INTEROP_PKJWT_CLIENT_ID'), privateJwk: env('INTEROP_PKJWT_PRIVATE_JWK') }
const VALET_BIN = env('INTEROP_VALET_BIN')
const KEYS_RELOAD_SECONDS = Number(env('INTEROP_KEYS_RELOAD_SECONDS', '30'))

// ---------------------------------------------------------------------------------------------
// The step runner

const results = { passed: 0, failed: 0, skipped: 0 }
const failedSteps = new Set()

/**
 * Run one named check. `needs` names earlier steps (or values) it depends on: if one of them
 * failed, this one is reported as SKIP (the failure is already counted).
 */
async function step(name, needs, fn) {
  const missing = needs.filter((n) => failedSteps.has(n))
  if (missing.length) {
    results.skipped++
    failedSteps.add(name)
    console.log(`SKIP  ${name} (needs: ${missing.join(', ')})`)
    return
  }
  const started = Date.now()
  try {
    const note = await fn()
    results.passed++
    console.log(`PASS  ${name}${note ? ` (${note})` : ''} [${Date.now() - started} ms]`)
  } catch (err) {
    results.failed++
    failedSteps.add(name)
    console.log(`FAIL  ${name}\n${describe(err)}`)
  }
}

function skip(name, reason) {
  results.skipped++
  failedSteps.add(name)
  console.log(`SKIP  ${name} (${reason})`)
}

/** An error with what the libraries attach to it: OAuth error codes, HTTP status, body. */
function describe(err) {
  const lines = [`    ${err?.stack?.split('\n').slice(0, 1).join('') ?? String(err)}`]
  if (err?.message && !lines[0].includes(err.message)) lines.push(`    ${err.message}`)
  for (const key of ['code', 'error', 'error_description', 'status']) {
    if (err?.[key] !== undefined) lines.push(`    ${key}: ${JSON.stringify(err[key])}`)
  }
  let cause = err?.cause
  for (let depth = 0; cause !== undefined && depth < 3; depth++) {
    lines.push(`    cause: ${stringify(cause)}`)
    cause = cause?.cause
  }
  return lines.join('\n')
}

function stringify(v) {
  if (v instanceof Error) return `${v.name}: ${v.message}`
  if (v instanceof Response) return `Response ${v.status} ${v.url}`
  if (v instanceof Headers) return JSON.stringify(Object.fromEntries(v))
  try {
    return JSON.stringify(v, (k, x) => (x instanceof Headers ? Object.fromEntries(x) : x))?.slice(0, 1500)
  } catch {
    return String(v)
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message)
}

function equal(actual, expected, what) {
  check(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
}

const insecure = { [oauth.allowInsecureRequests]: true } // http://127.0.0.1 only
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const run = promisify(execFile)

// What the steps hand on to later ones.
const s = {}

// ---------------------------------------------------------------------------------------------
// openid-client: the confidential web client (client_secret_post, the library's default)

await step('openid-client: discovery', [], async () => {
  s.web = await client.discovery(ISSUER, WEB.id, WEB.secret, undefined, {
    execute: [client.allowInsecureRequests],
  })
  const meta = s.web.serverMetadata()
  equal(meta.issuer, ISSUER.href.replace(/\/$/, ''), 'issuer')
  check(meta.supportsPKCE(), 'discovery does not list S256 in code_challenge_methods_supported')
  s.meta = meta
  return `issuer ${meta.issuer}`
})

await step('openid-client: authorization code + PKCE + state + nonce through the login and consent pages', ['openid-client: discovery'], async () => {
  s.webVerifier = client.randomPKCECodeVerifier()
  s.webState = client.randomState()
  s.webNonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(s.web, {
    redirect_uri: WEB.redirectUri,
    scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(s.webVerifier),
    code_challenge_method: 'S256',
    state: s.webState,
    nonce: s.webNonce,
  })
  s.webBrowser = new Browser('web')
  s.webCallback = await s.webBrowser.navigate(url, {
    until: (u) => u.href.startsWith(WEB.redirectUri),
    onPage: signInAndAllow(USER),
  })
  const p = s.webCallback.searchParams
  check(p.get('code'), `no code on the redirect: ${s.webCallback}`)
  equal(p.get('state'), s.webState, 'state on the redirect')
  equal(p.get('iss'), s.meta.issuer, 'iss on the redirect (RFC 9207)')
  return s.webBrowser.trace.join(' | ')
})

await step('openid-client: authorizationCodeGrant (ID token validated by the library)', ['openid-client: authorization code + PKCE + state + nonce through the login and consent pages'], async () => {
  s.webTokens = await client.authorizationCodeGrant(s.web, s.webCallback, {
    pkceCodeVerifier: s.webVerifier,
    expectedState: s.webState,
    expectedNonce: s.webNonce,
    idTokenExpected: true,
  })
  const claims = s.webTokens.claims()
  check(claims, 'no ID token')
  equal(claims.nonce, s.webNonce, 'ID token nonce')
  check(typeof claims.sub === 'string' && claims.sub, 'ID token sub')
  equal(s.webTokens.token_type.toLowerCase(), 'bearer', 'token_type')
  const at = jose.decodeJwt(s.webTokens.access_token)
  equal(at.aud, s.meta.userinfo_endpoint, 'access token aud (no audience asked: the UserInfo URL)')
  equal(at.client_id, WEB.id, 'access token client_id')
  s.sub = claims.sub
  return `sub ${claims.sub}, scope "${s.webTokens.scope}", refresh token ${s.webTokens.refresh_token ? 'issued' : 'NOT issued'}`
})

await step('jose: ID token signature verifies against the JWKS', ['openid-client: authorizationCodeGrant (ID token validated by the library)'], async () => {
  const jwks = jose.createRemoteJWKSet(new URL(s.meta.jwks_uri))
  const { protectedHeader } = await jose.jwtVerify(s.webTokens.id_token, jwks, {
    issuer: s.meta.issuer,
    audience: WEB.id,
  })
  return `alg ${protectedHeader.alg}, kid ${protectedHeader.kid}`
})

await step('openid-client: fetchUserInfo', ['openid-client: authorizationCodeGrant (ID token validated by the library)'], async () => {
  const info = await client.fetchUserInfo(s.web, s.webTokens.access_token, s.sub)
  equal(info.sub, s.sub, 'userinfo sub')
  equal(info.email, USER.email, 'userinfo email')
  equal(info.name, USER.name, 'userinfo name')
  equal(info.preferred_username, USER.username, 'userinfo preferred_username')
  return Object.keys(info).join(' ')
})

await step('openid-client: tokenIntrospection of its access token', ['openid-client: authorizationCodeGrant (ID token validated by the library)'], async () => {
  const info = await client.tokenIntrospection(s.web, s.webTokens.access_token)
  equal(info.active, true, 'active')
  equal(info.client_id, WEB.id, 'client_id')
  equal(info.sub, s.sub, 'sub')
  return `scope "${info.scope}"`
})

await step('openid-client: refreshTokenGrant', ['openid-client: authorizationCodeGrant (ID token validated by the library)'], async () => {
  check(s.webTokens.refresh_token, 'the authorization code grant issued no refresh token (client has the refresh_token grant, scope had offline_access)')
  s.refreshed = await client.refreshTokenGrant(s.web, s.webTokens.refresh_token)
  check(s.refreshed.access_token, 'no access token')
  check(s.refreshed.access_token !== s.webTokens.access_token, 'the same access token again')
  const info = await client.fetchUserInfo(s.web, s.refreshed.access_token, s.sub)
  equal(info.sub, s.sub, 'userinfo sub with the refreshed access token')
  // OpenID Connect Core §12.2: the library validated the new ID token; same user, no nonce.
  check(s.refreshed.id_token, 'no ID token on refresh of an openid grant')
  const renewed = s.refreshed.claims()
  equal(renewed.sub, s.sub, 'sub of the refreshed ID token')
  check(renewed.nonce === undefined, 'a nonce in the refreshed ID token')
  return `refresh token ${s.refreshed.refresh_token ? (s.refreshed.refresh_token === s.webTokens.refresh_token ? 'kept' : 'rotated') : 'not returned'}, id_token ${s.refreshed.id_token ? 'returned' : 'not returned'}`
})

await step('openid-client: tokenRevocation of the refresh token (then introspection says inactive and the grant fails)', ['openid-client: refreshTokenGrant'], async () => {
  const rt = s.refreshed.refresh_token ?? s.webTokens.refresh_token
  const before = await client.tokenIntrospection(s.web, rt)
  equal(before.active, true, 'refresh token active before revocation')
  await client.tokenRevocation(s.web, rt)
  const after = await client.tokenIntrospection(s.web, rt)
  equal(after.active, false, 'refresh token active after revocation')
  let refused
  try {
    await client.refreshTokenGrant(s.web, rt)
  } catch (err) {
    refused = err
  }
  check(refused, 'the revoked refresh token still works')
  equal(refused.error, 'invalid_grant', 'error of the refresh grant with the revoked token')
  const at = await client.tokenIntrospection(s.web, s.refreshed.access_token)
  return `the grant's access token is now ${at.active ? 'still active' : 'inactive too'}`
})

await step('openid-client: pushed authorization request (buildAuthorizationUrlWithPAR, RFC 9126)', ['openid-client: discovery'], async () => {
  check(s.meta.pushed_authorization_request_endpoint, 'discovery has no pushed_authorization_request_endpoint')
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const url = await client.buildAuthorizationUrlWithPAR(s.web, {
    redirect_uri: WEB.redirectUri,
    scope: 'openid email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  })
  const requestUri = url.searchParams.get('request_uri') ?? ''
  check(requestUri.startsWith('urn:ietf:params:oauth:request_uri:'), `the authorization URL carries no pushed request_uri: ${url}`)
  check(!url.searchParams.has('redirect_uri'), 'the request parameters travelled in the front channel')
  const browser = new Browser('par')
  const back = await browser.navigate(url, {
    until: (u) => u.href.startsWith(WEB.redirectUri),
    onPage: signInAndAllow(USER),
  })
  const tokens = await client.authorizationCodeGrant(s.web, back, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  })
  equal(tokens.claims().email, USER.email, 'email in the ID token of the pushed request')
  return browser.trace.join(' | ')
})

await step('openid-client: device authorization grant (initiateDeviceAuthorization, pollDeviceAuthorizationGrant; RFC 8628)', ['openid-client: discovery'], async () => {
  check(s.meta.device_authorization_endpoint, 'discovery has no device_authorization_endpoint')
  const tv = await client.discovery(ISSUER, DEVICE.id, DEVICE.secret, undefined, {
    execute: [client.allowInsecureRequests],
  })
  const started = await client.initiateDeviceAuthorization(tv, { scope: 'openid email' })
  check(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/.test(started.user_code), `user_code ${started.user_code}`)
  // The person, on another device: the code filled in from verification_uri_complete, then
  // the usual login and consent pages.
  const browser = new Browser('device')
  const person = async () => {
    const signIn = signInAndAllow(USER)
    const end = await browser.navigate(started.verification_uri_complete, {
      until: () => false,
      onPage: (page) => {
        if (page.form?.inputs.some((i) => i.name === 'user_code')) {
          return { ...page.form.hidden, user_code: started.user_code }
        }
        return page.form ? signIn(page) : FINISHED
      },
    })
    check(/connected/.test(end.body), `the last page does not say the device is connected: ${end.finished?.summary}`)
  }
  // The library polls at the interval (5 s) while the person answers.
  const [tokens] = await Promise.all([client.pollDeviceAuthorizationGrant(tv, started), person()])
  equal(tokens.claims().email, USER.email, 'email in the device grant ID token')
  return browser.trace.join(' | ')
})

await step('openid-client: RP-initiated logout (end_session_endpoint, id_token_hint, state echoed)', ['openid-client: authorizationCodeGrant (ID token validated by the library)'], async () => {
  check(s.meta.end_session_endpoint, 'discovery has no end_session_endpoint')
  check(WEB.postLogoutRedirectUri, 'INTEROP_WEB_POST_LOGOUT_REDIRECT_URI is not set')
  const state = client.randomState()
  const url = client.buildEndSessionUrl(s.web, {
    id_token_hint: s.webTokens.id_token,
    post_logout_redirect_uri: WEB.postLogoutRedirectUri,
    state,
  })
  // The browser that signed in; a confirmation page, if the server shows one, is submitted.
  const back = await s.webBrowser.navigate(url, {
    until: (u) => u.href.startsWith(WEB.postLogoutRedirectUri),
    onPage: submitForm,
  })
  equal(back.origin + back.pathname, WEB.postLogoutRedirectUri, 'post-logout redirect')
  equal(back.searchParams.get('state'), state, 'state on the post-logout redirect')
  // The session is over: a prompt=none request from the same browser must now need a login.
  const verifier = client.randomPKCECodeVerifier()
  const silent = client.buildAuthorizationUrl(s.web, {
    redirect_uri: WEB.redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: client.randomState(),
    nonce: client.randomNonce(),
    prompt: 'none',
  })
  const answer = await s.webBrowser.navigate(silent, {
    until: (u) => u.href.startsWith(WEB.redirectUri),
    onPage: () => null,
  })
  equal(answer.searchParams.get('error'), 'login_required', 'prompt=none after logout')
  return s.webBrowser.trace.join(' | ')
})

// ---------------------------------------------------------------------------------------------
// openid-client: the service client (client credentials)

await step('openid-client: clientCredentialsGrant for the contacts API', [], async () => {
  s.service = await client.discovery(ISSUER, SERVICE.id, SERVICE.secret, undefined, {
    execute: [client.allowInsecureRequests],
  })
  // `audience` is Valet's parameter naming the API (RFC 8707's `resource` is the standard one).
  const tokens = await client.clientCredentialsGrant(s.service, { audience: API.identifier, scope: API.scope })
  const at = jose.decodeJwt(tokens.access_token)
  equal(at.aud, API.identifier, 'aud')
  equal(at.client_id, SERVICE.id, 'client_id')
  equal(tokens.scope ?? at.scope, API.scope, 'scope')
  const info = await client.tokenIntrospection(s.service, tokens.access_token)
  equal(info.active, true, 'introspection by the service client of its own token')
  s.serviceTokens = tokens
  return `expires_in ${tokens.expires_in}`
})

await step('openid-client: tokenRevocation of an access token (then introspection says inactive)', ['openid-client: clientCredentialsGrant for the contacts API'], async () => {
  const at = s.serviceTokens.access_token
  await client.tokenRevocation(s.service, at)
  const after = await client.tokenIntrospection(s.service, at)
  equal(after.active, false, 'access token active after revocation')
})

// ---------------------------------------------------------------------------------------------
// oauth4webapi: the public client (PKCE, no secret) and a resource server

await step('oauth4webapi: discovery', [], async () => {
  const res = await oauth.discoveryRequest(ISSUER, { algorithm: 'oidc', ...insecure })
  s.as = await oauth.processDiscoveryResponse(ISSUER, res)
  return `${Object.keys(s.as).length} metadata fields`
})

const spa = { client_id: SPA.id, token_endpoint_auth_method: 'none' }

await step('oauth4webapi: authorization code + PKCE for the public client through the login and consent pages', ['oauth4webapi: discovery'], async () => {
  s.spaVerifier = oauth.generateRandomCodeVerifier()
  s.spaState = oauth.generateRandomState()
  s.spaNonce = oauth.generateRandomNonce()
  const url = new URL(s.as.authorization_endpoint)
  url.search = new URLSearchParams({
    client_id: SPA.id,
    redirect_uri: SPA.redirectUri,
    response_type: 'code',
    scope: 'openid profile email',
    code_challenge: await oauth.calculatePKCECodeChallenge(s.spaVerifier),
    code_challenge_method: 'S256',
    state: s.spaState,
    nonce: s.spaNonce,
  }).toString()
  // A second browser: its own cookies, so it signs in again.
  const browser = new Browser('spa')
  const callback = await browser.navigate(url, {
    until: (u) => u.href.startsWith(SPA.redirectUri),
    onPage: signInAndAllow(USER),
  })
  s.spaParams = oauth.validateAuthResponse(s.as, spa, callback, s.spaState)
  return browser.trace.join(' | ')
})

await step('oauth4webapi: processAuthorizationCodeResponse (ID token claims validated)', ['oauth4webapi: authorization code + PKCE for the public client through the login and consent pages'], async () => {
  const res = await oauth.authorizationCodeGrantRequest(s.as, spa, oauth.None(), s.spaParams, SPA.redirectUri, s.spaVerifier, insecure)
  s.spaTokens = await oauth.processAuthorizationCodeResponse(s.as, spa, res, {
    expectedNonce: s.spaNonce,
    requireIdToken: true,
  })
  const claims = oauth.getValidatedIdTokenClaims(s.spaTokens)
  check(claims, 'no ID token claims')
  equal(claims.aud, SPA.id, 'ID token aud')
  s.spaSub = claims.sub
  if (s.sub) equal(claims.sub, s.sub, 'the same user has the same sub for both clients (public subject type)')
  return `sub ${claims.sub}, refresh token ${s.spaTokens.refresh_token ? 'issued' : 'not issued'}`
})

await step('oauth4webapi: userinfo', ['oauth4webapi: processAuthorizationCodeResponse (ID token claims validated)'], async () => {
  const res = await oauth.userInfoRequest(s.as, spa, s.spaTokens.access_token, insecure)
  const info = await oauth.processUserInfoResponse(s.as, spa, s.spaSub, res)
  equal(info.email, USER.email, 'userinfo email')
  equal(info.name, USER.name, 'userinfo name')
})

const service = { client_id: SERVICE.id }
const contactsRequest = (token) =>
  new Request(new URL('/contacts', API.identifier), { headers: { authorization: `Bearer ${token}` } })

async function serviceToken() {
  const res = await oauth.clientCredentialsGrantRequest(s.as, service, oauth.ClientSecretPost(SERVICE.secret), { audience: API.identifier, scope: API.scope }, insecure)
  return (await oauth.processClientCredentialsResponse(s.as, service, res)).access_token
}

await step('oauth4webapi: validateJwtAccessToken (RFC 9068) as the contacts API', ['oauth4webapi: discovery'], async () => {
  const token = await serviceToken()
  const claims = await oauth.validateJwtAccessToken(s.as, contactsRequest(token), API.identifier, insecure)
  equal(claims.client_id, SERVICE.id, 'client_id')
  check((claims.scope ?? '').split(' ').includes(API.scope), `scope ${claims.scope} lacks ${API.scope}`)
  return `typ at+jwt, sub ${claims.sub}, scope "${claims.scope}"`
})

await step('oauth4webapi: validateJwtAccessToken refuses a UserInfo-audience token at the contacts API', ['oauth4webapi: processAuthorizationCodeResponse (ID token claims validated)'], async () => {
  let refused
  try {
    await oauth.validateJwtAccessToken(s.as, contactsRequest(s.spaTokens.access_token), API.identifier, insecure)
  } catch (err) {
    refused = err
  }
  check(refused, 'a token whose aud is the UserInfo URL was accepted by the contacts API')
  return `${refused.code ?? refused.name}: ${refused.message}`
})

// ---------------------------------------------------------------------------------------------
// private_key_jwt (RFC 7523 §2.2): openid-client signs the client assertion with the client's
// private key; Valet verifies it against the JWK Set registered with --jwks-file.

await step('openid-client: client_credentials with PrivateKeyJwt (ES256 assertion)', ['openid-client: discovery'], async () => {
  const jwk = JSON.parse(readFileSync(PKJWT.privateJwk, 'utf8'))
  const privateKey = await jose.importJWK(jwk, 'ES256')
  const config = await client.discovery(ISSUER, PKJWT.id, undefined, client.PrivateKeyJwt({ key: privateKey, kid: jwk.kid }), {
    execute: [client.allowInsecureRequests],
  })
  check(
    config.serverMetadata().token_endpoint_auth_methods_supported?.includes('private_key_jwt'),
    'discovery does not list private_key_jwt',
  )
  const tokens = await client.clientCredentialsGrant(config, { scope: API.scope, audience: API.identifier })
  const { payload } = await jose.jwtVerify(tokens.access_token, jose.createRemoteJWKSet(new URL(s.meta.jwks_uri)), {
    issuer: s.meta.issuer,
    audience: API.identifier,
  })
  equal(payload.client_id, PKJWT.id, 'client_id')
  // The same grant again: a fresh assertion (new jti) works too.
  await client.clientCredentialsGrant(config, { scope: API.scope, audience: API.identifier })
  return `kid ${jwk.kid}, token for ${payload.aud}`
})

// ---------------------------------------------------------------------------------------------
// Key rotation seen by a resource server whose JWKS cache is warm (jose, default options:
// 30 s cooldown before an unknown kid may trigger a refetch, 10 min cache).
//
// Valet's spec: `valet keys rotate` (without --now) publishes the new key in the JWKS at once,
// as the `next` key; it becomes the signing key only after keys.activation_delay (default
// 5 min). So a token minted right after the rotation is still signed by the old key, and a
// verifier that fetched the JWKS before the rotation accepts it without a refetch.

await step('jose: RFC 9068 token verified with createRemoteJWKSet + jwtVerify (the cache is now warm)', ['oauth4webapi: discovery'], async () => {
  s.rsJwks = jose.createRemoteJWKSet(new URL(s.as.jwks_uri))
  const token = await serviceToken()
  const { payload, protectedHeader } = await jose.jwtVerify(token, s.rsJwks, {
    issuer: s.as.issuer,
    audience: API.identifier,
    typ: 'at+jwt',
  })
  equal(payload.client_id, SERVICE.id, 'client_id')
  s.oldKid = protectedHeader.kid
  s.cachedKids = s.rsJwks.jwks()?.keys.map((k) => k.kid) ?? []
  return `kid ${protectedHeader.kid}; cached kids ${s.cachedKids.join(',')}`
})

const ROTATION = 'key rotation: `valet keys rotate` publishes the new key in the JWKS'
await step(ROTATION, ['jose: RFC 9068 token verified with createRemoteJWKSet + jwtVerify (the cache is now warm)'], async () => {
  const { stdout } = await run(VALET_BIN, ['keys', 'rotate', '--json'])
  const rotated = JSON.parse(stdout)
  s.newKid = rotated.kid ?? rotated.key?.kid
  check(s.newKid, `no kid in the output of keys rotate --json: ${stdout}`)
  check(s.newKid !== s.oldKid, 'keys rotate returned the current kid')
  // The running server loads keys from the store every keys.reload_interval.
  const deadline = Date.now() + (KEYS_RELOAD_SECONDS + 5) * 1000
  let kids = []
  while (Date.now() < deadline) {
    const res = await fetch(s.as.jwks_uri)
    kids = (await res.json()).keys.map((k) => k.kid)
    if (kids.includes(s.newKid)) break
    await sleep(250)
  }
  check(kids.includes(s.newKid), `the JWKS never showed the new kid ${s.newKid}: ${kids.join(',')}`)
  const { stdout: list } = await run(VALET_BIN, ['keys', 'list', '--json'])
  const statuses = JSON.parse(list).map((k) => `${k.kid === s.newKid ? 'new' : k.kid === s.oldKid ? 'old' : k.kid}=${k.status}`)
  return `keys rotate output ${stdout.trim().replace(/\s+/g, ' ')}; keys list: ${statuses.join(', ')}; JWKS kids ${kids.join(',')}`
})

await step('key rotation: a token minted right after `keys rotate` is still signed by the old key (activation delay)', [ROTATION], async () => {
  s.afterRotation = await serviceToken()
  const { kid } = jose.decodeProtectedHeader(s.afterRotation)
  equal(kid, s.oldKid, 'kid of a token minted right after keys rotate (the new key must not sign before keys.activation_delay)')
})

await step('key rotation: the warm-cache verifier accepts a token minted after `keys rotate`', [ROTATION], async () => {
  // Within jose's cooldown a kid missing from the cache fails at once instead of refetching:
  // that is the stale-cache failure this check would show if the new key signed too early.
  const coolingDown = s.rsJwks.coolingDown
  const token = s.afterRotation ?? (await serviceToken())
  const { protectedHeader } = await jose.jwtVerify(token, s.rsJwks, {
    issuer: s.as.issuer,
    audience: API.identifier,
    typ: 'at+jwt',
  })
  return `kid ${protectedHeader.kid}; ${coolingDown ? 'within the cooldown: verified from the cache fetched before the rotation' : 'cooldown over (slow run): jose may have refetched'}`
})

// ---------------------------------------------------------------------------------------------

console.log(`\ninterop: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`)
process.exit(results.failed > 0 ? 1 : 0)
