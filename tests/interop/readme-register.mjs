// Runs the README's MCP-style registration example as it stands: the block between
// <!-- register:start --> and <!-- register:end -->, which run.sh writes to
// readme-register-example.mjs. The client finds Valet from the API's protected-resource
// metadata, registers itself with openid-client's dynamicClientRegistration, and signs alice
// in through the real pages; the token must be for the API and verify against the JWKS.

import * as jose from 'jose'
import { Browser, signInAndAllow } from './browser.mjs'

const example = await import('./readme-register-example.mjs')
const browser = new Browser('readme-register')
const back = await browser.navigate(example.signIn, {
  until: (u) => u.href.startsWith(process.env.REDIRECT_URI),
  onPage: signInAndAllow({ username: process.env.INTEROP_USERNAME, password: process.env.INTEROP_PASSWORD }),
})
const tokens = await example.callback(back)
const problems = []
const metadata = example.config.clientMetadata()
if (!metadata.client_id) problems.push('no client_id from the registration')
if (metadata.client_secret) problems.push('a public client got a secret')
const issuer = example.config.serverMetadata().issuer
const jwks = jose.createRemoteJWKSet(new URL(example.config.serverMetadata().jwks_uri), {})
try {
  const { payload } = await jose.jwtVerify(tokens.access_token, jwks, {
    issuer,
    audience: process.env.INTEROP_API,
    typ: 'at+jwt',
  })
  if (payload.client_id !== metadata.client_id) problems.push(`client_id ${payload.client_id}`)
  if (payload.scope !== process.env.INTEROP_API_SCOPE) problems.push(`scope ${payload.scope}`)
} catch (e) {
  problems.push(`access token: ${e.message}`)
}
if (!tokens.refresh_token) problems.push('no refresh token')
if (problems.length) {
  console.log(`FAIL  README MCP-style registration example: ${problems.join('; ')}`)
  process.exit(1)
}
console.log(`PASS  README MCP-style registration example (client ${metadata.client_id}, ${browser.trace.join(' | ')})`)
