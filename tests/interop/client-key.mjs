// A private_key_jwt client's key pair (ES256, made with WebCrypto through jose): the public
// JWK Set for `valet client create --jwks-file`, the private JWK for interop.mjs.
//
//   node client-key.mjs PUBLIC_JWKS_FILE PRIVATE_JWK_FILE
import { writeFileSync } from 'node:fs'
import * as jose from 'jose'

const [publicFile, privateFile] = process.argv.slice(2)
const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
const publicJwk = await jose.exportJWK(publicKey)
const kid = await jose.calculateJwkThumbprint(publicJwk)
writeFileSync(publicFile, JSON.stringify({ keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' }] }))
writeFileSync(privateFile, JSON.stringify({ ...(await jose.exportJWK(privateKey)), kid, alg: 'ES256' }), { mode: 0o600 })
