// Runs the README's "Sign in with Valet" example as it stands: the block between
// <!-- signin:start --> and <!-- signin:end -->, which run.sh writes to readme-signin.mjs,
// driven through Valet's real login and consent pages by the interop browser.

import { Browser, signInAndAllow } from './browser.mjs'

const example = await import('./readme-signin.mjs')
const browser = new Browser('readme')
const back = await browser.navigate(example.signIn, {
  until: (u) => u.href.startsWith(process.env.REDIRECT_URI),
  onPage: signInAndAllow({ username: process.env.INTEROP_USERNAME, password: process.env.INTEROP_PASSWORD }),
})
const { claims, profile } = await example.callback(back)
const problems = []
if (!claims.sub) problems.push('no sub in the ID token')
if (profile.sub !== claims.sub) problems.push(`userinfo sub ${profile.sub} is not ${claims.sub}`)
if (profile.email !== process.env.INTEROP_USER_EMAIL) problems.push(`userinfo email ${profile.email}`)
if (problems.length) {
  console.log(`FAIL  README "Sign in with Valet" example: ${problems.join('; ')}`)
  process.exit(1)
}
console.log(`PASS  README "Sign in with Valet" example (sub ${claims.sub}, ${browser.trace.join(' | ')})`)
