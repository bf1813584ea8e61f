// A minimal "browser" for Valet's HTML pages: a cookie jar, redirects followed by hand
// (redirect: 'manual'), and the page's one form posted back with its hidden inputs unchanged.
// No JavaScript, like a user agent with scripting off.

const REDIRECT = new Set([301, 302, 303, 307, 308])

/** What `onPage` returns for a page that ends the navigation. */
export const FINISHED = Symbol('finished')

export class Browser {
  constructor(name) {
    this.name = name
    /** @type {Map<string, {value: string, host: string}>} */
    this.jar = new Map()
    /** Every hop of the last navigation, for failure messages. */
    this.trace = []
  }

  /** Keep the cookies a response sets (host-only, Path=/ is all Valet uses). */
  #store(url, res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair.indexOf('=')
      if (eq < 1) continue
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const maxAge = attrs
        .map((a) => a.trim().split('='))
        .find(([k]) => k.toLowerCase() === 'max-age')
      if ((maxAge && Number(maxAge[1]) <= 0) || value === '') {
        this.jar.delete(name)
      } else {
        this.jar.set(name, { value, host: url.host })
      }
    }
  }

  #cookieHeader(url) {
    return [...this.jar]
      .filter(([, c]) => c.host === url.host)
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ')
  }

  /** One request, no redirect followed. `form` (an object or URLSearchParams) makes it a POST. */
  async request(url, form) {
    url = new URL(url)
    const headers = { accept: 'text/html' }
    const cookie = this.#cookieHeader(url)
    if (cookie) headers.cookie = cookie
    const init = { method: 'GET', headers, redirect: 'manual' }
    if (form) {
      init.method = 'POST'
      headers['content-type'] = 'application/x-www-form-urlencoded'
      init.body = new URLSearchParams(form).toString()
    }
    const res = await fetch(url, init)
    this.#store(url, res)
    this.trace.push(`${init.method} ${url.pathname}${url.search ? '?…' : ''} -> ${res.status}`)
    return res
  }

  /**
   * Navigate from `start`: follow redirects; on an HTML page, ask `onPage(page, url)` for the
   * fields to post to its form. Ends when a redirect's target satisfies `until(url)`, returning
   * that URL (which is not fetched: it is the relying party's callback).
   */
  async navigate(start, { until, onPage, maxHops = 20 }) {
    this.trace = []
    let url = new URL(start)
    let res = await this.request(url)
    for (let hop = 0; hop < maxHops; hop++) {
      if (REDIRECT.has(res.status)) {
        const location = res.headers.get('location')
        if (!location) throw this.#fail(`${res.status} without Location at ${url}`)
        await res.arrayBuffer()
        url = new URL(location, url)
        if (until(url)) return url
        res = await this.request(url)
        continue
      }
      const body = await res.text()
      if (res.status !== 200 || !/text\/html/.test(res.headers.get('content-type') ?? '')) {
        throw this.#fail(`unexpected ${res.status} at ${url}: ${body.slice(0, 300)}`)
      }
      const page = parsePage(body)
      const fields = onPage(page, url)
      // A page that ends the journey (e.g. "your device is connected"): hand it back.
      if (fields === FINISHED) return { finished: page, body }
      if (!fields) throw this.#fail(`no way forward on the page at ${url}: ${page.summary}`)
      const action = new URL(page.form.action || url.href, url)
      url = action
      res = await this.request(action, fields)
    }
    throw this.#fail(`more than ${maxHops} hops`)
  }

  #fail(message) {
    return new Error(`${message}\n    trace: ${this.trace.join(' | ')}`)
  }
}

/** Sign in and allow: fill the login page's form, then press the consent page's Allow button. */
export function signInAndAllow({ username, password }) {
  return (page) => {
    if (!page.form) return null
    const names = page.form.inputs.map((i) => i.name)
    if (names.includes('password')) {
      if (page.alert) throw new Error(`login page says: ${page.alert}`)
      return { ...page.form.hidden, username, password }
    }
    const allow = page.form.buttons.find((b) => b.name === 'decision' && b.value === 'allow')
    if (allow) return { ...page.form.hidden, decision: 'allow' }
    return null
  }
}

/** Submit whatever form the page has (its hidden inputs and first named button), e.g. a confirmation. */
export function submitForm(page) {
  if (!page.form) return null
  const fields = { ...page.form.hidden }
  const button = page.form.buttons.find((b) => b.name)
  if (button) fields[button.name] = button.value
  return fields
}

export function parsePage(html) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)]
  const title = /<h1[^>]*>([\s\S]*?)<\/h1>/i.exec(html)?.[1]
  const alert = /<div[^>]*class="alert"[^>]*>([\s\S]*?)<\/div>/i.exec(html)?.[1]
  const text = (s) => (s === undefined ? undefined : decode(s.replace(/<[^>]*>/g, '')).trim())
  const page = { title: text(title), alert: text(alert), form: null }
  page.summary = `h1=${JSON.stringify(page.title)} alert=${JSON.stringify(page.alert)} forms=${forms.length}`
  if (forms.length !== 1) return page
  const [, formAttrs, inner] = forms[0]
  const attrs = parseAttrs(formAttrs)
  const inputs = [...inner.matchAll(/<input\b([^>]*)>/gi)].map((m) => parseAttrs(m[1]))
  const buttons = [...inner.matchAll(/<button\b([^>]*)>/gi)].map((m) => parseAttrs(m[1]))
  const hidden = {}
  for (const i of inputs) if ((i.type ?? '').toLowerCase() === 'hidden' && i.name) hidden[i.name] = i.value ?? ''
  page.form = {
    method: (attrs.method ?? 'get').toLowerCase(),
    action: attrs.action,
    inputs: inputs.map((i) => ({ name: i.name, type: i.type, value: i.value })),
    buttons: buttons.map((b) => ({ name: b.name, value: b.value ?? '' })),
    hidden,
  }
  return page
}

function parseAttrs(s) {
  const out = {}
  for (const m of s.matchAll(/([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '')
  }
  return out
}

const NAMED = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }

function decode(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10)
      return String.fromCodePoint(code)
    }
    return NAMED[ref.toLowerCase()] ?? whole
  })
}
