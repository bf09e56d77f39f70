/**
 * The demo page, its stylesheet and its browser bundle. The bundle (demo/main.ts and what it imports) is built
 * with esbuild on first request and kept in memory; esbuild is a dev dependency, so a
 * production install without it serves the page with an error instead of the editor.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const demoDir = fileURLToPath(new URL('../demo/', import.meta.url))
let bundle: Promise<string> | null = null
let page: string | null = null
let styles: string | null = null

/** The demo page HTML (demo/index.html). */
export function demoPage(): string {
  page ??= readFileSync(demoDir + 'index.html', 'utf8')
  return page
}

/** The demo page's stylesheet (demo/style.css). */
export function demoStyles(): string {
  styles ??= readFileSync(demoDir + 'style.css', 'utf8')
  return styles
}

/** The demo's JavaScript, bundled once per process. */
export function demoBundle(): Promise<string> {
  bundle ??= (async () => {
    const esbuild = await import('esbuild')
    const out = await esbuild.build({
      entryPoints: [demoDir + 'main.ts'],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      minify: true,
      logLevel: 'silent',
    })
    return out.outputFiles[0]!.text
  })()
  bundle.catch(() => (bundle = null))
  return bundle
}
