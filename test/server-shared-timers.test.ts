/** The server links' clock (server/shared-timers.ts): timers due together share one Node timer. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SharedTimers } from '../server/shared-timers.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs `body` counting the Node timers it sets. */
async function countingNodeTimers(body: () => Promise<void>): Promise<number> {
  const real = globalThis.setTimeout
  let n = 0
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    n++
    return real(fn, ms)
  }) as typeof setTimeout
  try {
    await body()
  } finally {
    globalThis.setTimeout = real
  }
  return n
}

test('timers due in the same ms share one Node timer and run in the order set', async () => {
  const clock = new SharedTimers()
  const ran: number[] = []
  const at = Math.ceil(clock.now()) + 30
  const nodeTimers = await countingNodeTimers(async () => {
    for (let i = 0; i < 200; i++) clock.setTimeout(() => ran.push(i), at - clock.now())
  })
  assert.is(nodeTimers, 1)
  assert.is(clock.pending, 200)
  await sleep(60)
  assert.equal(
    ran,
    Array.from({ length: 200 }, (_, i) => i),
  )
  assert.is(clock.pending, 0)
})

test('a timer never runs before its time, and different times get their own Node timer', async () => {
  const clock = new SharedTimers()
  const late: number[] = []
  const set = clock.now()
  const nodeTimers = await countingNodeTimers(async () => {
    for (const ms of [5, 25, 45]) {
      clock.setTimeout(() => late.push(clock.now() - set - ms), ms)
    }
  })
  assert.is(nodeTimers, 3)
  await sleep(80)
  assert.is(late.length, 3)
  // Rounded to the ms, as Node's own timers are.
  for (const l of late) assert.ok(l >= -1, `ran ${-l} ms early`)
})

test('a cleared timer does not run; the others due with it do', async () => {
  const clock = new SharedTimers()
  const ran: string[] = []
  const a = clock.setTimeout(() => ran.push('a'), 10)
  clock.setTimeout(() => ran.push('b'), 10)
  clock.clearTimeout(a)
  clock.clearTimeout(a) // twice: still nothing
  clock.clearTimeout(null) // not a handle: ignored
  assert.is(clock.pending, 1)
  await sleep(40)
  assert.equal(ran, ['b'])
})

test('a timer that throws does not stop the others; its error is thrown again, uncaught', async () => {
  const clock = new SharedTimers()
  const ran: string[] = []
  const errors: unknown[] = []
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', (e) => errors.push(e))
  try {
    clock.setTimeout(() => {
      throw new Error('first')
    }, 10)
    clock.setTimeout(() => ran.push('after'), 10)
    await sleep(40)
  } finally {
    process.removeAllListeners('uncaughtException')
    for (const l of listeners) process.on('uncaughtException', l)
  }
  assert.equal(ran, ['after'])
  assert.is(errors.length, 1)
  assert.is((errors[0] as Error).message, 'first')
})

test('a timer set while its moment fires gets a new Node timer, and runs', async () => {
  const clock = new SharedTimers()
  const ran: string[] = []
  clock.setTimeout(() => {
    ran.push('outer')
    clock.setTimeout(() => ran.push('inner'), 0)
  }, 5)
  await sleep(40)
  assert.equal(ran, ['outer', 'inner'])
})

test.run()
