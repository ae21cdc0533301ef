#!/usr/bin/env node
// Protocol-compatibility scenario for the sessions service, driven through a real,
// unmodified npm Seneca client (`seneca.client({type: 'tcp'})`).
//
// Usage: node tests/compat/drive.js <client-dir> <host> <port> [<max-per-user>]
//   <client-dir> holds node_modules/seneca and node_modules/seneca-transport of one
//   client generation (tests/compat/v8 or tests/compat/v2), installed with `npm ci`.
//   <max-per-user>: the service's SESSIONS_MAX_PER_USER, started with
//   SESSIONS_MAX_PER_USER_POLICY=refuse (0 or absent: no cap, the cap checks fail).
//
// Every command of the service is exercised with its own assertions. Output: one
// line per check (`ok - ...` or `FAIL - ...: detail`), then a summary line
// `N passed, N failed`. Exit code 0 only when nothing failed.
'use strict'

const Path = require('path')
const Fs = require('fs')
const Util = require('util')

const [dirArg, host, portArg, capArg] = process.argv.slice(2)
if (!dirArg || !host || !portArg) {
  console.error('usage: node drive.js <client-dir> <host> <port>')
  process.exit(2)
}
const dir = Path.resolve(dirArg)
const port = parseInt(portArg, 10)
const maxPerUser = parseInt(capArg || '0', 10)
const req = (m) => require(Path.join(dir, 'node_modules', m))

// Default action timeout of the client instances. Generous: a slow CI machine must
// not turn a correct answer into a failure; the calls that must answer *quickly*
// (unknown patterns) set their own shorter `timeout$`.
const TIMEOUT_MS = 10000
const QUICK_MS = 3000
// Whole-run watchdog, so a server that never answers cannot hang the test.
const WATCHDOG_MS = 180000

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const SESSION_ID = /^[0-9a-f]{32}$/
const FIELDS = [
  'id',
  'user_id',
  'user_name',
  'active',
  'open_time',
  'request_time',
  'close_time',
  'address',
  'client',
  'user',
  'data',
]
const P = { role: 'sessions', version: 1 }

let passed = 0
let failed = 0
let finished = false

function check(name, cond, detail) {
  if (cond) {
    passed++
    console.log('ok - ' + name)
  } else {
    failed++
    console.log('FAIL - ' + name + (detail === undefined ? '' : ': ' + show(detail)))
  }
  return !!cond
}

function show(v) {
  if (typeof v === 'string') return v
  try {
    return JSON.stringify(v, errReplacer)
  } catch (e) {
    return String(v)
  }
}

function errReplacer(k, v) {
  if (v instanceof Error) {
    const o = {}
    for (const p of Object.getOwnPropertyNames(v)) if (p !== 'stack') o[p] = v[p]
    return o
  }
  return v
}

// What an Error looks like to an operator reading a failed check.
function errSummary(err) {
  if (!err) return err
  return {
    code: err.code,
    message: err.message,
    seneca: err.seneca,
    status: err.status,
    orig: err.orig,
  }
}

function summary(extraFailure) {
  if (finished) return
  finished = true
  if (extraFailure) {
    failed++
    console.log('FAIL - ' + extraFailure)
  }
  console.log(passed + ' passed, ' + failed + ' failed')
}

function plain(v) {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v))
}

function same(a, b) {
  return Util.isDeepStrictEqual(plain(a), plain(b))
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// seneca.act(msg, cb) as a promise that never rejects: {err, out}. Works on every
// Seneca 3.x generation.
function act(si, msg) {
  return new Promise((resolve) => {
    si.act(msg, function (err, out) {
      resolve({ err: err || null, out })
    })
  })
}

// Asserts a call succeeded and returns its result (undefined when it failed).
function ok(name, r) {
  if (!check(name + ': no error', !r.err, errSummary(r.err))) return undefined
  return r.out
}

// Asserts `s` is a SessionV1 with every field present and dates in Node's ISO form.
function checkShape(name, s) {
  if (!check(name + ': is an object', s && typeof s === 'object' && !Array.isArray(s), s)) {
    return false
  }
  const missing = FIELDS.filter((f) => !(f in s))
  let good = check(name + ': has every SessionV1 field', missing.length === 0, { missing })
  good =
    check(name + ': id is 32 lowercase hex', SESSION_ID.test(s.id), s.id) && good
  good =
    check(
      name + ': open_time/request_time are ISO strings with ms and Z',
      ISO.test(s.open_time) && ISO.test(s.request_time),
      { open_time: s.open_time, request_time: s.request_time },
    ) && good
  good =
    check(
      name + ': close_time is null or an ISO string',
      s.close_time === null || ISO.test(s.close_time),
      s.close_time,
    ) && good
  return good
}

// Asserts an error reply from the service arrives as a Node Seneca server sends it:
// `seneca: true` so the client passes it through unchanged, `act_execute` on top and
// the application error under `orig`.
function checkAppError(name, r, code, status, cmd, extra) {
  const err = r.err
  if (!check(name + ': is an error', !!err, { out: r.out })) return undefined
  check(name + ': err.code is act_execute', err.code === 'act_execute', errSummary(err))
  check(name + ': err.seneca is true (passed through unchanged)', err.seneca === true, errSummary(err))
  const orig = err.orig || {}
  check(name + ': err.orig.code is ' + code, orig.code === code, errSummary(err))
  check(name + ': err.orig.status is ' + status, orig.status === status, errSummary(err))
  const prefix = 'seneca: Action cmd:' + cmd + ',role:sessions'
  check(
    name + ': message names the action ("' + prefix + '...")',
    typeof err.message === 'string' && err.message.startsWith(prefix),
    err.message,
  )
  if (extra) extra(err, orig)
  return err
}

function checkNotFound(name, r) {
  const err = r.err
  if (!check(name + ': is an error', !!err, { out: r.out })) return
  check(
    name + ': err.code is act_not_found (answered, not a client timeout)',
    err.code === 'act_not_found',
    errSummary(err),
  )
  check(
    name + ': not a timeout',
    err.code !== 'action_timeout' && !/TIMEOUT/.test(String(err.message)),
    errSummary(err),
  )
}

function makeClient(pin) {
  const Seneca = req('seneca')
  const si = Seneca({
    log: 'silent',
    timeout: TIMEOUT_MS,
    // Load the exact seneca-transport of <client-dir>, not one seneca may bundle.
    default_plugins: { transport: false },
  })
  si.use(req('seneca-transport'))
  const cfg = { type: 'tcp', host, port }
  if (pin) cfg.pin = pin
  si.client(cfg)
  return si
}

function ready(si) {
  return new Promise((resolve, reject) => {
    si.ready(function (err) {
      if (err) reject(err)
      else resolve()
    })
  })
}

function close(si) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 2000)
    try {
      si.close(() => {
        clearTimeout(t)
        resolve()
      })
    } catch (e) {
      clearTimeout(t)
      resolve()
    }
  })
}

// ---------------------------------------------------------------------------------
// The scenario, section by section. A section that throws is one failure; the next
// sections still run.

const tag = 'c' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8)
const ctx = {}

const USER = {
  name: 'Zoë Ångström 🚀',
  roles: ['admin', 'ünïcødé', '日本語'],
  profile: { address: { city: 'Zürich', zip: '8001' }, tags: [] },
  age: 42,
  score: -3.25,
  verified: true,
  nothing: null,
}
const DATA = {
  cart: [
    { sku: 'A-1', qty: 2, price: 19.99 },
    { sku: 'B-2', qty: 1, price: 0.1 },
  ],
  note: 'line\nbreak "quoted" back\\slash \u2028 ✓ 😀',
  big: 9007199254740991,
  small: 1e-7,
  neg: -7,
  zero: 0,
  empty: {},
  nested: { a: { b: { c: [1, [2, [3]], { d: 'deep' }] } } },
  'key$': 'dollar keys inside data are not stripped',
}

const sections = [
  [
    'open_session',
    async (si) => {
      const msg = Object.assign({}, P, {
        cmd: 'open_session',
        user_id: tag + '-alice',
        user_name: 'Alice Ü',
        address: '10.1.2.3',
        client: 'web',
        user: USER,
        data: DATA,
      })
      const s = ok('open_session', await act(si, msg))
      if (!checkShape('open_session', s)) return
      check('open_session: user_id', s.user_id === msg.user_id, s.user_id)
      check('open_session: user_name', s.user_name === 'Alice Ü', s.user_name)
      check('open_session: address and client', s.address === '10.1.2.3' && s.client === 'web', s)
      check('open_session: active', s.active === true, s.active)
      check('open_session: close_time null', s.close_time === null, s.close_time)
      check('open_session: user round-trips exactly', same(s.user, USER), s.user)
      check('open_session: data round-trips exactly', same(s.data, DATA), s.data)
      ctx.alice = s
    },
  ],
  [
    'reuse',
    async (si) => {
      const a = ctx.alice
      await sleep(20)
      const base = Object.assign({}, P, { cmd: 'open_session', user_id: a.user_id })
      const r = ok(
        'open_session reuse',
        await act(si, Object.assign({}, base, { address: '10.1.2.3', client: 'web' })),
      )
      if (r) {
        check('reuse: same user/address/client gives the same id', r.id === a.id, { first: a.id, again: r.id })
        check('reuse: still active', r.active === true, r.active)
        check(
          'reuse: request_time moved forward',
          Date.parse(r.request_time) > Date.parse(a.request_time),
          { before: a.request_time, after: r.request_time },
        )
        check('reuse: open_time unchanged', r.open_time === a.open_time, { before: a.open_time, after: r.open_time })
      }
      const other = ok(
        'open_session other client',
        await act(si, Object.assign({}, base, { address: '10.1.2.3', client: 'mobile' })),
      )
      if (other) check('reuse: another client gives another id', other.id !== a.id, other.id)
      const bare1 = ok('open_session no address/client', await act(si, base))
      const bare2 = ok('open_session no address/client again', await act(si, base))
      if (bare1 && bare2) {
        check('reuse: missing address/client equals missing', bare1.id === bare2.id, [bare1.id, bare2.id])
        check('reuse: missing differs from given', bare1.id !== a.id && bare1.id !== (other && other.id), bare1.id)
      }
      ctx.aliceOther = other
      ctx.aliceBare = bare1
    },
  ],
  [
    'get_session_by_id',
    async (si) => {
      const a = ctx.alice
      const g = ok(
        'get_session_by_id',
        await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: a.id })),
      )
      if (!checkShape('get_session_by_id', g)) return
      check('get_session_by_id: same id', g.id === a.id, g.id)
      check('get_session_by_id: user round-trips exactly', same(g.user, USER), g.user)
      check('get_session_by_id: data round-trips exactly', same(g.data, DATA), g.data)
      check('get_session_by_id: open_time as at open', g.open_time === a.open_time, g.open_time)
      await sleep(20)
      const g2 = ok(
        'get_session_by_id again',
        await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: a.id })),
      )
      if (g2) {
        check('get_session_by_id does not change request_time', g2.request_time === g.request_time, {
          before: g.request_time,
          after: g2.request_time,
        })
      }
      ctx.alice = g
    },
  ],
  [
    'version forms',
    async (si) => {
      const a = ctx.alice
      const s = ok(
        'version "1" (string)',
        await act(si, { role: 'sessions', version: '1', cmd: 'get_session_by_id', session_id: a.id }),
      )
      check('version "1" (string): answered with the session', s && s.id === a.id, s)
      const n = ok(
        'no version',
        await act(si, { role: 'sessions', cmd: 'get_session_by_id', session_id: a.id }),
      )
      check('no version: answered with the session', n && n.id === a.id, n)
      const o = ok(
        'no version: open_session',
        await act(si, { role: 'sessions', cmd: 'open_session', user_id: tag + '-nover' }),
      )
      if (o) check('no version: open_session opens', o.user_id === tag + '-nover' && o.active === true, o)
      checkNotFound(
        'version 2',
        await act(si, { role: 'sessions', version: 2, cmd: 'get_session_by_id', session_id: a.id, timeout$: QUICK_MS }),
      )
    },
  ],
  [
    'get_sessions',
    async (si) => {
      const user = tag + '-bob'
      const opened = []
      for (let i = 0; i < 5; i++) {
        const s = ok(
          'get_sessions setup: open #' + i,
          await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: user, client: 'c' + i, data: { i } })),
        )
        opened.push(s)
        await sleep(15) // distinct open_time for every session
      }
      if (opened.some((s) => !s)) return
      const ids = (page) => (page && Array.isArray(page.data) ? page.data.map((s) => s.id) : page)
      const newestFirst = opened.map((s) => s.id).reverse()
      const list = (filter, paging) => {
        const msg = Object.assign({}, P, { cmd: 'get_sessions' })
        if (filter) msg.filter = filter
        if (paging) msg.paging = paging
        return act(si, msg)
      }

      let p = ok('get_sessions by user_id', await list({ user_id: user }))
      if (p) {
        check('get_sessions: result is {data, total}', Array.isArray(p.data) && 'total' in p, p)
        check('get_sessions: newest first', same(ids(p), newestFirst), { got: ids(p), want: newestFirst })
        check('get_sessions: total is null unless asked for', p.total === null, p.total)
        check(
          'get_sessions: every row is a SessionV1 with ISO dates',
          Array.isArray(p.data) && p.data.every((s) => FIELDS.every((f) => f in s) && ISO.test(s.open_time)),
          p.data,
        )
        check(
          'get_sessions: rows carry their data',
          Array.isArray(p.data) && p.data.every((s, k) => same(s.data, { i: 4 - k })),
          p.data && p.data.map((s) => s.data),
        )
      }

      p = ok('get_sessions paging skip 1 take 2 total', await list({ user_id: user }, { skip: 1, take: 2, total: true }))
      if (p) {
        check('paging: the 2nd and 3rd newest', same(ids(p), newestFirst.slice(1, 3)), ids(p))
        check('paging: total counts every match', p.total === 5, p.total)
      }
      p = ok('get_sessions paging skip 4 take 2', await list({ user_id: user }, { skip: 4, take: 2 }))
      if (p) check('paging: last page is short', same(ids(p), newestFirst.slice(4)), ids(p))
      p = ok('get_sessions paging past the end', await list({ user_id: user }, { skip: 10, take: 2, total: true }))
      if (p) check('paging: past the end is empty with total', same(ids(p), []) && p.total === 5, p)
      p = ok('get_sessions paging negative skip', await list({ user_id: user }, { skip: -3, take: 1 }))
      if (p) check('paging: negative skip means 0', same(ids(p), newestFirst.slice(0, 1)), ids(p))

      // Time window on open_time, bounds sent as JavaScript Date objects.
      const from = new Date(opened[1].open_time)
      const to = new Date(opened[3].open_time)
      p = ok('get_sessions from_time/to_time as Dates', await list({ user_id: user, from_time: from, to_time: to }))
      if (p) {
        check(
          'time window: from inclusive, to exclusive',
          same(ids(p), [opened[2].id, opened[1].id]),
          { got: ids(p), want: [opened[2].id, opened[1].id] },
        )
      }
      p = ok('get_sessions from_time only', await list({ user_id: user, from_time: new Date(opened[3].open_time) }))
      if (p) check('time window: from_time only', same(ids(p), newestFirst.slice(0, 2)), ids(p))

      p = ok('get_sessions by id', await list({ id: opened[2].id }))
      if (p) check('filter by id', same(ids(p), [opened[2].id]), ids(p))

      const closed = ok(
        'get_sessions setup: close the oldest',
        await act(si, Object.assign({}, P, { cmd: 'close_session', session_id: opened[0].id })),
      )
      if (closed) {
        p = ok('get_sessions active:false', await list({ user_id: user, active: false }))
        if (p) check('filter active:false', same(ids(p), [opened[0].id]), ids(p))
        p = ok('get_sessions active:true', await list({ user_id: user, active: true }, { total: true }))
        if (p) check('filter active:true', same(ids(p), newestFirst.slice(0, 4)) && p.total === 4, p)
        p = ok('get_sessions active:"false" (string)', await list({ user_id: user, active: 'false' }))
        if (p) check('filter active:"false"', same(ids(p), [opened[0].id]), ids(p))
      }

      p = ok('get_sessions all users, take 1000, total', await list(null, { take: 1000, total: true }))
      if (p && Array.isArray(p.data)) {
        check('all users: total counts at least ours', typeof p.total === 'number' && p.total >= 5, p.total)
        check(
          'all users: take clamped to the default maximum 100',
          p.data.length === Math.min(p.total, 100),
          { rows: p.data.length, total: p.total },
        )
        const times = p.data.map((s) => Date.parse(s.open_time))
        check(
          'all users: newest open_time first across users',
          times.every((t, k) => k === 0 || times[k - 1] >= t),
          p.data.map((s) => s.open_time),
        )
      }

      checkAppError(
        'get_sessions bad from_time',
        await list({ user_id: user, from_time: 'not-a-date' }),
        'INVALID_DATA',
        400,
        'get_sessions',
        (err, orig) =>
          check('bad from_time: message names the field', /from_time/.test(String(orig.message)), orig),
      )
      ctx.bob = opened
    },
  ],
  [
    'store_session_data / update_session_user',
    async (si) => {
      const a = ctx.alice
      await sleep(20)
      const newData = { step: 2, items: ['x', 'ÿ', '🎉'], deep: { ok: true } }
      const s = ok(
        'store_session_data',
        await act(si, Object.assign({}, P, { cmd: 'store_session_data', session_id: a.id, data: newData })),
      )
      if (checkShape('store_session_data', s)) {
        check('store_session_data: returns the new data', same(s.data, newData), s.data)
        check('store_session_data: user kept', same(s.user, USER), s.user)
        check(
          'store_session_data: request_time moved forward',
          Date.parse(s.request_time) > Date.parse(a.request_time),
          { before: a.request_time, after: s.request_time },
        )
      }
      const newUser = { name: 'Alice Ü', roles: [], prefs: { lang: 'de-CH', theme: null } }
      const u = ok(
        'update_session_user',
        await act(si, Object.assign({}, P, { cmd: 'update_session_user', session_id: a.id, user: newUser })),
      )
      if (checkShape('update_session_user', u)) {
        check('update_session_user: returns the new user', same(u.user, newUser), u.user)
        check('update_session_user: data kept', same(u.data, newData), u.data)
      }
      const g = ok(
        'get after writes',
        await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: a.id })),
      )
      if (g) check('get after writes: both stored', same(g.data, newData) && same(g.user, newUser), g)
      ctx.alice = g || a
    },
  ],
  [
    'close_session',
    async (si) => {
      const a = ctx.alice
      await sleep(20)
      const c = ok('close_session', await act(si, Object.assign({}, P, { cmd: 'close_session', session_id: a.id })))
      if (!checkShape('close_session', c)) return
      check('close_session: active false', c.active === false, c.active)
      check('close_session: close_time set', ISO.test(c.close_time), c.close_time)
      check('close_session: data and user cleared', c.data === null && c.user === null, { data: c.data, user: c.user })
      check(
        'close_session: request_time moved forward',
        Date.parse(c.request_time) > Date.parse(a.request_time),
        { before: a.request_time, after: c.request_time },
      )
      const again = ok(
        'close_session again',
        await act(si, Object.assign({}, P, { cmd: 'close_session', session_id: a.id })),
      )
      if (again) check('close_session again: unchanged', same(again, c), { first: c, again })
      const g = ok('get closed', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: a.id })))
      if (g) check('get closed: closed as returned', same(g, c), g)
      const o = ok(
        'open_session after close',
        await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: a.user_id, address: a.address, client: a.client })),
      )
      if (o) check('open_session after close: a closed session is not reused', o.id !== a.id && o.active === true, o)
      ctx.closed = c
    },
  ],
  [
    'errors',
    async (si) => {
      const c = ctx.closed
      for (const [cmd, arg] of [
        ['store_session_data', { data: { late: true } }],
        ['update_session_user', { user: { late: true } }],
      ]) {
        checkAppError(
          cmd + ' on a closed session',
          await act(si, Object.assign({}, P, { cmd, session_id: c.id }, arg)),
          'SESSION_CLOSED',
          409,
          cmd,
          (err, orig) => check(cmd + ' on closed: category Conflict', orig.category === 'Conflict', orig),
        )
      }
      const g = ok('get after refused writes', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: c.id })))
      if (g) check('refused writes changed nothing', same(g, c), g)

      checkAppError(
        'open_session without user_id',
        await act(si, Object.assign({}, P, { cmd: 'open_session', address: '1.2.3.4', correlation_id: 'corr-' + tag })),
        'INVALID_DATA',
        400,
        'open_session',
        (err, orig) => {
          check('INVALID_DATA: message names user_id', /user_id/.test(String(orig.message)), orig)
          check('INVALID_DATA: category BadRequest', orig.category === 'BadRequest', orig)
          check('INVALID_DATA: correlation_id echoed', orig.correlation_id === 'corr-' + tag, orig)
        },
      )
      checkAppError(
        'open_session with a numeric user_id',
        await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: 12345 })),
        'INVALID_DATA',
        400,
        'open_session',
        (err, orig) => check('wrong type: message names user_id', /user_id/.test(String(orig.message)), orig),
      )
      checkAppError(
        'get_session_by_id without session_id',
        await act(si, Object.assign({}, P, { cmd: 'get_session_by_id' })),
        'INVALID_DATA',
        400,
        'get_session_by_id',
        (err, orig) => check('missing session_id: message names session_id', /session_id/.test(String(orig.message)), orig),
      )

      checkNotFound(
        'unknown cmd',
        await act(si, Object.assign({}, P, { cmd: 'no_such_cmd', timeout$: QUICK_MS })),
      )
      checkNotFound(
        'unknown role',
        await act(si, { role: 'no_such_role', version: 1, cmd: 'get_session_by_id', session_id: c.id, timeout$: QUICK_MS }),
      )
    },
  ],
  [
    'unknown ids',
    async (si) => {
      for (const id of ['00' + '0'.repeat(30), 'ff' + '0'.repeat(30), 'not-a-session-id']) {
        for (const [cmd, arg] of [
          ['get_session_by_id', {}],
          ['store_session_data', { data: { x: 1 } }],
          ['update_session_user', { user: { x: 1 } }],
          ['close_session', {}],
          ['delete_session', {}],
        ]) {
          const r = await act(si, Object.assign({}, P, { cmd, session_id: id }, arg))
          check(cmd + ' "' + id + '": null result, not an error', !r.err && r.out === null, {
            err: errSummary(r.err),
            out: r.out,
          })
        }
      }
    },
  ],
  [
    'delete',
    async (si) => {
      for (const cmd of ['delete_session', 'delete_session_by_id']) {
        const o = ok(
          cmd + ' setup',
          await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: tag + '-' + cmd, data: { doomed: true } })),
        )
        if (!o) continue
        const d = ok(cmd, await act(si, Object.assign({}, P, { cmd, session_id: o.id })))
        if (d) {
          check(cmd + ': returns the deleted session', d.id === o.id && same(d.data, { doomed: true }), d)
        }
        const g = await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: o.id }))
        check(cmd + ': then get gives null', !g.err && g.out === null, { err: errSummary(g.err), out: g.out })
        const l = ok(
          cmd + ': then get_sessions',
          await act(si, Object.assign({}, P, { cmd: 'get_sessions', filter: { user_id: o.user_id }, paging: { total: true } })),
        )
        if (l) check(cmd + ': gone from the listing', same(l.data, []) && l.total === 0, l)
        const again = await act(si, Object.assign({}, P, { cmd, session_id: o.id }))
        check(cmd + ' again: null', !again.err && again.out === null, { err: errSummary(again.err), out: again.out })
      }
    },
  ],
  [
    'large values',
    async (si) => {
      // 32 KiB of mixed ASCII and multi-byte text: under the default data limit.
      const chunk = 'abcdefghij-ÄÖÜ-日本-😀-'
      const big = { blob: chunk.repeat(Math.ceil(32768 / Buffer.byteLength(chunk))), list: [] }
      for (let i = 0; i < 200; i++) big.list.push({ i, s: 'item ' + i })
      const s = ok(
        'open_session with 32 KiB of data',
        await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: tag + '-big', data: big })),
      )
      if (s) check('32 KiB data round-trips exactly', same(s.data, big), 'data differs')
      // 600 KB: over any data limit the service allows, still a line it reads whole.
      const huge = { blob: 'x'.repeat(600 * 1000) }
      const target = s ? s.id : '00' + '0'.repeat(30)
      checkAppError(
        'store_session_data with 600 KB of data',
        await act(si, Object.assign({}, P, { cmd: 'store_session_data', session_id: target, data: huge })),
        'DATA_TOO_LARGE',
        413,
        'store_session_data',
      )
      if (s) {
        const g = ok('get after the refused write', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: s.id })))
        if (g) check('refused large write changed nothing, connection still serves', same(g.data, big), 'data differs')
      }
    },
  ],
  [
    'close_expired_sessions',
    async (si) => {
      const r = await act(si, Object.assign({}, P, { cmd: 'close_expired_sessions' }))
      check('close_expired_sessions: null result', !r.err && r.out === null, { err: errSummary(r.err), out: r.out })
      const bare = ctx.aliceBare
      if (bare) {
        const g = ok('after sweep', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: bare.id })))
        if (g) check('close_expired_sessions: fresh sessions stay active', g.active === true, g)
      }
    },
  ],
  [
    'close_user_sessions',
    async (si) => {
      const user = tag + '-carol'
      const opened = []
      for (const client of ['web', 'mobile', 'tablet']) {
        const s = ok(
          'close_user_sessions setup: open ' + client,
          await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: user, client, data: { client } })),
        )
        if (!s) return
        opened.push(s)
      }
      const other = ok(
        'close_user_sessions setup: another user',
        await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: tag + '-dave', client: 'web' })),
      )
      await sleep(20)
      const r = ok(
        'close_user_sessions with except_session_id',
        await act(si, Object.assign({}, P, { cmd: 'close_user_sessions', user_id: user, except_session_id: opened[1].id })),
      )
      if (r) check('close_user_sessions: answers {closed: 2}', same(r, { closed: 2 }), r)
      for (const s of [opened[0], opened[2]]) {
        const g = ok('close_user_sessions: get a revoked session', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: s.id })))
        if (g) {
          check(
            'close_user_sessions: closed as close_session closes',
            g.active === false && ISO.test(g.close_time) && g.close_time === g.request_time && g.data === null && g.user === null,
            g,
          )
        }
      }
      const kept = ok('close_user_sessions: get the kept session', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: opened[1].id })))
      if (kept) check('close_user_sessions: the kept session is untouched', same(kept, opened[1]), kept)
      if (other) {
        const g = ok('close_user_sessions: get another user', await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: other.id })))
        if (g) check('close_user_sessions: other users untouched', g.active === true, g)
      }
      const again = ok('close_user_sessions again', await act(si, Object.assign({}, P, { cmd: 'close_user_sessions', user_id: user, except_session_id: opened[1].id })))
      if (again) check('close_user_sessions again: {closed: 0}', same(again, { closed: 0 }), again)
      const nobody = ok('close_user_sessions unknown user', await act(si, Object.assign({}, P, { cmd: 'close_user_sessions', user_id: tag + '-nobody' })))
      if (nobody) check('close_user_sessions unknown user: {closed: 0}', same(nobody, { closed: 0 }), nobody)
      checkAppError(
        'close_user_sessions without user_id',
        await act(si, Object.assign({}, P, { cmd: 'close_user_sessions', except_session_id: opened[1].id })),
        'INVALID_DATA',
        400,
        'close_user_sessions',
        (err, orig) => check('close_user_sessions without user_id: message names user_id', /user_id/.test(String(orig.message)), orig),
      )
    },
  ],
  [
    'per-user cap',
    async (si) => {
      if (!check('per-user cap: the service runs with a cap', maxPerUser > 0, maxPerUser)) return
      const user = tag + '-erin'
      const opened = []
      for (let i = 0; i < maxPerUser; i++) {
        const s = ok('per-user cap setup: open #' + i, await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: user, client: 'c' + i })))
        if (!s) return
        opened.push(s)
      }
      checkAppError(
        'open_session past the per-user cap',
        await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: user, client: 'one-too-many', correlation_id: 'cap-' + tag })),
        'SESSION_LIMIT',
        409,
        'open_session',
        (err, orig) => {
          check('SESSION_LIMIT: category Conflict', orig.category === 'Conflict', orig)
          check('SESSION_LIMIT: details.limit is the cap', orig.details && orig.details.limit === maxPerUser, orig)
          check('SESSION_LIMIT: correlation_id echoed', orig.correlation_id === 'cap-' + tag, orig)
        },
      )
      const l = ok(
        'per-user cap: listing',
        await act(si, Object.assign({}, P, { cmd: 'get_sessions', filter: { user_id: user }, paging: { total: true } })),
      )
      if (l) check('per-user cap: a refused open creates nothing', l.total === maxPerUser, l.total)
      const again = ok('per-user cap: reuse', await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: user, client: 'c0' })))
      if (again) check('per-user cap: a reuse is not a new session', again.id === opened[0].id, again)
      const r = ok('per-user cap: revoke all', await act(si, Object.assign({}, P, { cmd: 'close_user_sessions', user_id: user })))
      if (r) check('per-user cap: revoke all answers the count', same(r, { closed: maxPerUser }), r)
      const o = ok('per-user cap: open after revoking', await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: user, client: 'one-too-many' })))
      if (o) check('per-user cap: room again', o.active === true, o)
    },
  ],
  [
    'concurrency',
    async (si) => {
      const N = 150
      const users = Array.from({ length: N }, (_, i) => tag + '-par-' + i)
      const opens = await Promise.all(
        users.map((u, i) => act(si, Object.assign({}, P, { cmd: 'open_session', user_id: u, data: { i } }))),
      )
      const bad = opens
        .map((r, i) => [r, i])
        .filter(([r, i]) => r.err || !r.out || r.out.user_id !== users[i] || !same(r.out.data, { i }))
      check(N + ' concurrent opens: each answered with its own session', bad.length === 0, {
        wrong: bad.length,
        first: bad[0] && { i: bad[0][1], err: errSummary(bad[0][0].err), out: bad[0][0].out },
      })
      const ids = opens.map((r) => r.out && r.out.id)
      check(N + ' concurrent opens: distinct ids', new Set(ids).size === N, new Set(ids).size)
      const gets = await Promise.all(
        ids.map((id) => act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: id }))),
      )
      const wrong = gets
        .map((r, i) => [r, i])
        .filter(([r, i]) => r.err || !r.out || r.out.id !== ids[i] || r.out.user_id !== users[i] || !same(r.out.data, { i }))
      check(N + ' concurrent gets: each answered with its own session', wrong.length === 0, {
        wrong: wrong.length,
        first: wrong[0] && { i: wrong[0][1], err: errSummary(wrong[0][0].err), out: wrong[0][0].out },
      })
      ctx.parallel = opens.map((r) => r.out)
    },
  ],
  [
    'fire-and-forget',
    async (si) => {
      const s = ok(
        'fire-and-forget setup',
        await act(si, Object.assign({}, P, { cmd: 'open_session', user_id: tag + '-ff' })),
      )
      if (!s) return
      const marker = 'm-' + tag
      // No callback: the client sends sync:false and completes the call itself.
      si.act(Object.assign({}, P, { cmd: 'store_session_data', session_id: s.id, data: { marker } }))
      let seen = null
      const deadline = Date.now() + 8000
      while (Date.now() < deadline) {
        const g = await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: s.id }))
        if (g.out && g.out.data && g.out.data.marker === marker) {
          seen = g.out
          break
        }
        await sleep(50)
      }
      check('fire-and-forget store_session_data is applied', seen !== null, 'marker not seen within 8 s')
      // The connection still works normally afterwards (no stray reply confused it).
      const after = await act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: s.id }))
      check('fire-and-forget: later calls still answered', !after.err && after.out && after.out.id === s.id, {
        err: errSummary(after.err),
      })
    },
  ],
]

// Checks through a second Seneca instance whose client only routes the service's
// pin 'role:sessions,version:1' (a second connection, used alongside the first).
async function pinnedChecks(pinned, si) {
  const name = 'pinned client'
  const o = ok(name + ': open_session', await act(pinned, Object.assign({}, P, { cmd: 'open_session', user_id: tag + '-pin' })))
  if (!o) return
  const [a, b] = await Promise.all([
    act(pinned, { role: 'sessions', version: '1', cmd: 'get_session_by_id', session_id: o.id }),
    act(si, Object.assign({}, P, { cmd: 'get_session_by_id', session_id: o.id })),
  ])
  check(name + ': version "1" matches the pin and is answered', !a.err && a.out && a.out.id === o.id, {
    err: errSummary(a.err),
    out: a.out,
  })
  check(name + ': the other connection sees the same session', !b.err && same(b.out, a.out), { a: a.out, b: b.out })
  checkAppError(
    name + ': error passes through',
    await act(pinned, Object.assign({}, P, { cmd: 'store_session_data', session_id: ctx.closed ? ctx.closed.id : o.id, data: {} })),
    ctx.closed ? 'SESSION_CLOSED' : 'none',
    409,
    'store_session_data',
  )
}

// `await seneca.post(msg)` from seneca-promisify (the latest generation's way).
async function postChecks(si) {
  check('post: seneca-promisify installs seneca.post', typeof si.post === 'function', typeof si.post)
  if (typeof si.post !== 'function') return
  const s = await si.post(Object.assign({}, P, { cmd: 'open_session', user_id: tag + '-post', user: USER }))
  check('post: open_session resolves to the session', s && s.user_id === tag + '-post' && same(s.user, USER), s)
  const g = await si.post(Object.assign({}, P, { cmd: 'get_session_by_id', session_id: s.id }))
  check('post: get_session_by_id resolves to the session', g && g.id === s.id, g)
  const none = await si.post(Object.assign({}, P, { cmd: 'get_session_by_id', session_id: '00' + '0'.repeat(30) }))
  check('post: unknown id resolves to null', none === null, none)
  await si.post(Object.assign({}, P, { cmd: 'close_session', session_id: s.id }))
  let rejected = null
  try {
    await si.post(Object.assign({}, P, { cmd: 'store_session_data', session_id: s.id, data: { x: 1 } }))
  } catch (e) {
    rejected = e
  }
  check(
    'post: write to a closed session rejects with SESSION_CLOSED',
    rejected && rejected.code === 'act_execute' && rejected.orig && rejected.orig.code === 'SESSION_CLOSED',
    errSummary(rejected),
  )
}

async function main() {
  const pkg = JSON.parse(Fs.readFileSync(Path.join(dir, 'package.json'), 'utf8'))
  const deps = pkg.dependencies || {}
  const senecaVersion = req('seneca/package.json').version
  const transportVersion = req('seneca-transport/package.json').version
  console.log(
    '# seneca ' + senecaVersion + ' + seneca-transport ' + transportVersion + ' -> ' + host + ':' + port,
  )

  const si = makeClient()
  // seneca-promisify is part of a generation when its package.json lists it.
  const wantPost = 'seneca-promisify' in deps
  if (wantPost) si.use(req('seneca-promisify'))
  const pinned = makeClient('role:sessions,version:1')
  await ready(si)
  await ready(pinned)

  for (const [name, run] of sections) {
    try {
      await run(si)
    } catch (e) {
      check('section ' + name + ' ran to the end', false, e && e.stack ? e.stack : e)
    }
  }
  try {
    await pinnedChecks(pinned, si)
  } catch (e) {
    check('pinned client checks ran to the end', false, e && e.stack ? e.stack : e)
  }
  if (wantPost) {
    try {
      await postChecks(si)
    } catch (e) {
      check('post checks ran to the end', false, e && e.stack ? e.stack : e)
    }
  } else {
    console.log('# post: not part of this generation (no seneca-promisify)')
  }

  await close(pinned)
  await close(si)
}

const watchdog = setTimeout(() => {
  summary('watchdog: the scenario did not finish within ' + WATCHDOG_MS / 1000 + ' s')
  process.exit(1)
}, WATCHDOG_MS)

process.on('uncaughtException', (e) => {
  summary('uncaught exception in the client: ' + (e && e.stack ? e.stack : e))
  process.exit(1)
})

main().then(
  () => {
    clearTimeout(watchdog)
    summary()
    process.exit(failed === 0 ? 0 : 1)
  },
  (e) => {
    clearTimeout(watchdog)
    summary('scenario aborted: ' + (e && e.stack ? e.stack : e))
    process.exit(1)
  },
)
