/**
 * CPU time from Linux's /proc: the server benchmark reads a process's (all threads) and its
 * main thread's, both from the runner and from inside the server process.
 */
import { readFileSync } from 'node:fs'

/**
 * User + system CPU time, µs, in a /proc stat file (`/proc/PID/stat` for a whole process,
 * `/proc/PID/task/TID/stat` for one thread; 100 ticks a second, so 10 ms steps). Throws where
 * there is no such file (not Linux).
 */
export function statCpuUs(path: string): number {
  const stat = readFileSync(path, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}
