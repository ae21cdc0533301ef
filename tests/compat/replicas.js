#!/usr/bin/env node
// Several replicas, driven through real, unmodified npm Seneca clients
// (`seneca.client({type: 'tcp'})`); run by tests/replicas.rs, one phase per run so the
// test can read every replica's metrics between phases.
//
// Usage: node tests/compat/replicas.js <client-dir> <phase> <host> <port> [<port>...]
//   <client-dir>  holds node_modules/seneca and seneca-transport (tests/compat/v8)
//   <phase>       commands  every command through connections spread over the
//                           replicas by the balancer at <host>:<port>; each step of a
//                           session goes through another connection than the last
//                 race      50 connections through the balancer send the same
//                           open_session at once: one session comes out
//                 handoff   one client per replica port (given directly): a session
//                           opened through one replica is read, written, closed and
//                           deleted through the others
//
// Output: one line per check (`ok - ...` / `FAIL - ...: detail`), then
// `N passed, N failed`. Exit code 0 only when nothing failed.
'use strict'

const Path = require('path')
const Util = require('util')

const [dirArg, phase, host, ...portArgs] = process.argv.slice(2)
if (!dirArg || !phase || !host || portArgs.length === 0) {
  console.error('usage: node replicas.js <client-dir> <phase> <host> <port> [<port>...]')
  process.exit(2)
}
const dir = Path.resolve(dirArg)
const ports = portArgs.map((p) => parseInt(p, 10))
const req = (m) => require(Path.join(dir, 'node_modules', m))

const TIMEOUT_MS = 10000
const WATCHDOG_MS = 120000
const P = { role: 'sessions', version: 1 }
// Sessions of one run never meet those of another.
const tag = 'r' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8)

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
  try {
    return typeof v === 'string' ? v : JSON.stringify(v)
  } catch (e) {
    return String(v)
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

const same = (a, b) => Util.isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)))

function errSummary(err) {
  return err && { code: err.code, message: err.message, orig: err.orig }
}

// seneca.act as a promise that never rejects: {err, out}.
function act(si, msg) {
  return new Promise((resolve) => {
    si.act(Object.assign({}, P, msg), (err, out) => resolve({ err: err || null, out }))
  })
}

function ok(name, r) {
  return check(name + ': no error', !r.err, errSummary(r.err)) ? r.out : undefined
}

function makeClient(port) {
  const si = req('seneca')({
    log: 'silent',
    timeout: TIMEOUT_MS,
    // The exact seneca-transport of <client-dir>, not one seneca may bundle.
    default_plugins: { transport: false },
  })
  si.use(req('seneca-transport'))
  si.client({ type: 'tcp', host, port })
  return si
}

function ready(si) {
  return new Promise((resolve, reject) => si.ready((err) => (err ? reject(err) : resolve())))
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

// Clients made one after the other, so a round-robin balancer hands consecutive
// clients to consecutive replicas.
async function clients(n, port) {
  const all = []
  for (let i = 0; i < n; i++) {
    const si = makeClient(port)
    await ready(si)
    // A first call makes the connection now, in this order.
    await act(si, { cmd: 'get_session_by_id', session_id: '0'.repeat(32) })
    all.push(si)
  }
  return all
}

// One session's life, each step through the next client in `cs` (so through
// another replica than the step before when the balancer spread the clients).
// Every client issues every command, with an ok outcome, at some step of some cycle
// when `cycle` runs once per client with `first` = that client.
async function cycle(cs, first, name) {
  const at = (k) => cs[(first + k) % cs.length]
  const user = tag + '-' + name
  const open = { cmd: 'open_session', user_id: user, user_name: 'Zoë', address: '10.0.0.' + first, client: 'web' }
  const data = { cart: [1, 2, { sku: 'ü' }] }
  const s = ok(name + ' open_session', await act(at(0), Object.assign({ data, user: { n: 1 } }, open)))
  if (!s) return
  check(name + ' open_session: active with its data', s.active === true && same(s.data, data), s)

  const g = ok(name + ' get_session_by_id elsewhere', await act(at(1), { cmd: 'get_session_by_id', session_id: s.id }))
  check(name + ' get_session_by_id elsewhere: the same session', g && g.id === s.id && same(g.data, data), g)

  const data2 = { cart: [], step: 2 }
  const w = ok(name + ' store_session_data elsewhere', await act(at(2), { cmd: 'store_session_data', session_id: s.id, data: data2 }))
  check(name + ' store_session_data: new data', w && same(w.data, data2), w)
  const g2 = ok(name + ' read back', await act(at(0), { cmd: 'get_session_by_id', session_id: s.id }))
  check(name + ' read back: the stored data is seen by the first replica', g2 && same(g2.data, data2), g2)

  const u = ok(name + ' update_session_user', await act(at(1), { cmd: 'update_session_user', session_id: s.id, user: { n: 2 } }))
  check(name + ' update_session_user: new user', u && same(u.user, { n: 2 }), u)

  const list = ok(
    name + ' get_sessions',
    await act(at(2), { cmd: 'get_sessions', filter: { user_id: user, active: true }, paging: { total: true } }),
  )
  check(
    name + ' get_sessions: exactly this session',
    list && list.total === 1 && list.data.length === 1 && list.data[0].id === s.id && same(list.data[0].user, { n: 2 }),
    list,
  )

  const again = ok(name + ' open_session again (reuse)', await act(at(1), open))
  check(name + ' reuse through another replica: same id', again && again.id === s.id, again)

  const c = ok(name + ' close_session', await act(at(2), { cmd: 'close_session', session_id: s.id }))
  check(name + ' close_session: closed, data cleared', c && c.active === false && c.data === null && c.close_time, c)

  const late = await act(at(0), { cmd: 'store_session_data', session_id: s.id, data: { late: true } })
  check(
    name + ' store_session_data after close elsewhere: SESSION_CLOSED',
    late.err && late.err.orig && late.err.orig.code === 'SESSION_CLOSED',
    errSummary(late.err) || late.out,
  )

  const other = ok(name + ' open_session (another client)', await act(at(1), Object.assign({}, open, { client: 'mobile' })))
  const revoked = ok(name + ' close_user_sessions', await act(at(2), { cmd: 'close_user_sessions', user_id: user }))
  check(name + ' close_user_sessions elsewhere: the other live session revoked', revoked && revoked.closed === 1, revoked)
  if (other) {
    const go = ok(name + ' get the revoked session', await act(at(0), { cmd: 'get_session_by_id', session_id: other.id }))
    check(name + ' revoked session: closed for every replica', go && go.active === false && go.data === null, go)
  }

  ok(name + ' close_expired_sessions', await act(at(0), { cmd: 'close_expired_sessions' }))

  const d = ok(name + ' delete_session_by_id', await act(at(1), { cmd: 'delete_session_by_id', session_id: s.id }))
  check(name + ' delete_session_by_id: returns the closed session', d && d.id === s.id && d.active === false, d)
  const gone = ok(name + ' get after delete', await act(at(2), { cmd: 'get_session_by_id', session_id: s.id }))
  check(name + ' get after delete: null everywhere', gone === null, gone)

  // A session left behind, so the consistency check after the phase has data.
  const keep = ok(name + ' open_session (kept)', await act(at(2), { cmd: 'open_session', user_id: user + '-k', data: { k: first } }))
  if (keep) {
    const kw = ok(name + ' store on the kept session', await act(at(0), { cmd: 'store_session_data', session_id: keep.id, data: { k: -first } }))
    check(name + ' store on the kept session: new data', kw && same(kw.data, { k: -first }), kw)
  }

  const t = ok(name + ' open_session (temp)', await act(at(2), { cmd: 'open_session', user_id: user + '-t' }))
  if (t) {
    const dt = ok(name + ' delete_session', await act(at(0), { cmd: 'delete_session', session_id: t.id }))
    check(name + ' delete_session: returns it', dt && dt.id === t.id, dt)
  }
}

async function commands() {
  const cs = await clients(6, ports[0])
  for (let i = 0; i < cs.length; i++) await cycle(cs, i, 'c' + i)
  for (const si of cs) await close(si)
}

async function race() {
  const n = 50
  const cs = await clients(n, ports[0])
  const msg = { cmd: 'open_session', user_id: tag + '-race', address: '10.9.9.9', client: 'race', data: { race: true } }
  // Every connection is up; send all opens in the same tick.
  const results = await Promise.all(cs.map((si) => act(si, msg)))
  const errors = results.filter((r) => r.err)
  check('race: all ' + n + ' opens answered without error', errors.length === 0, errors.map((r) => errSummary(r.err)))
  const ids = new Set(results.filter((r) => r.out).map((r) => r.out.id))
  console.log('# race: ' + ids.size + ' distinct session id(s) from ' + n + ' opens')
  check('race: one session id for every open', ids.size === 1, [...ids])
  const list = ok(
    'race: get_sessions',
    await act(cs[0], { cmd: 'get_sessions', filter: { user_id: msg.user_id }, paging: { total: true } }),
  )
  check('race: the user has exactly one session', list && list.total === 1 && list.data.length === 1, list)
  for (const si of cs) await close(si)
}

async function handoff() {
  check('handoff: at least three replica ports', ports.length >= 3, ports)
  const cs = []
  for (const p of ports) {
    const si = makeClient(p)
    await ready(si)
    cs.push(si)
  }
  const [r0, r1, r2] = cs
  const user = tag + '-handoff'
  const s = ok('handoff: open on replica 0', await act(r0, { cmd: 'open_session', user_id: user, data: { v: 0 } }))
  if (!s) return
  const g = ok('handoff: read on replica 1', await act(r1, { cmd: 'get_session_by_id', session_id: s.id }))
  check('handoff: replica 1 sees it', g && g.id === s.id && same(g.data, { v: 0 }), g)
  const w = ok('handoff: write on replica 2', await act(r2, { cmd: 'store_session_data', session_id: s.id, data: { v: 2 } }))
  check('handoff: replica 2 wrote it', w && same(w.data, { v: 2 }), w)
  const c = ok('handoff: close on replica 1', await act(r1, { cmd: 'close_session', session_id: s.id }))
  check('handoff: replica 1 closed the session opened on replica 0', c && c.id === s.id && c.active === false, c)
  const g2 = ok('handoff: read on replica 2', await act(r2, { cmd: 'get_session_by_id', session_id: s.id }))
  check('handoff: replica 2 sees it closed', g2 && g2.active === false && g2.close_time === c.close_time, g2)
  const late = await act(r0, { cmd: 'store_session_data', session_id: s.id, data: { v: 3 } })
  check(
    'handoff: replica 0 refuses a write to it with SESSION_CLOSED',
    late.err && late.err.orig && late.err.orig.code === 'SESSION_CLOSED',
    errSummary(late.err) || late.out,
  )
  const again = ok('handoff: open again on replica 2', await act(r2, { cmd: 'open_session', user_id: user }))
  check('handoff: a closed session is not reused', again && again.id !== s.id && again.active === true, again)
  const list = ok(
    'handoff: list on replica 0',
    await act(r0, { cmd: 'get_sessions', filter: { user_id: user }, paging: { total: true } }),
  )
  check(
    'handoff: replica 0 lists both, newest first',
    list && list.total === 2 && list.data[0].id === again.id && list.data[1].id === s.id,
    list,
  )
  for (const si of cs) await close(si)
}

const phases = { commands, race, handoff }

async function main() {
  if (!phases[phase]) throw new Error('unknown phase ' + phase)
  console.log(
    '# ' + phase + ': seneca ' + req('seneca/package.json').version + ' + seneca-transport ' +
      req('seneca-transport/package.json').version + ' -> ' + host + ':' + ports.join(','),
  )
  await phases[phase]()
}

const watchdog = setTimeout(() => {
  summary('watchdog: the phase did not finish within ' + WATCHDOG_MS / 1000 + ' s')
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
    summary('phase aborted: ' + (e && e.stack ? e.stack : e))
    process.exit(1)
  },
)
