/**
 * HTTP routes (express): the demo page, health, metrics and the document REST API.
 *
 * `GET /api/docs/:id` and `/api/docs/:id/text` need, when a secret is set, a token for that
 * document (`Authorization: Bearer T` or `?token=T`; either role may read): none or an invalid
 * one answers 401, one for another document 403. A document that cannot be read from storage
 * answers 503, never an empty text.
 */
import express, { type Request, type Response } from 'express'
import { verifyToken } from './auth.ts'
import { CapacityError, type DocumentRegistry } from './documents.ts'
import type { Logger } from './log.ts'
import type { ServerMetrics } from './metrics.ts'
import { demoBundle, demoPage } from './demo-bundle.ts'
import { parseDocId } from './ws-endpoint.ts'

/** What the routes need. */
export interface HttpContext {
  readonly registry: DocumentRegistry
  readonly secret: string | undefined
  readonly log: Logger
  readonly metrics: ServerMetrics
}

function tokenOf(req: Request): string | null {
  const h = req.headers.authorization
  if (typeof h === 'string' && h.startsWith('Bearer ')) return h.slice(7).trim()
  const q = req.query.token
  return typeof q === 'string' ? q : null
}

/** The express app serving every HTTP route. */
export function createHttpApp(ctx: HttpContext): express.Express {
  const app = express()
  app.disable('x-powered-by')
  app.set('query parser', 'simple')

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true })
  })

  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', ctx.metrics.registry.contentType)
    res.send(await ctx.metrics.registry.metrics())
  })

  app.get('/', (_req, res) => {
    res.type('html').send(demoPage())
  })

  app.get('/demo.js', async (_req, res) => {
    try {
      res.type('application/javascript').send(await demoBundle())
    } catch (err) {
      ctx.log.error({ err }, 'demo bundle failed')
      res
        .status(500)
        .type('text/plain')
        .send('demo bundle unavailable: ' + String(err))
    }
  })

  const readDoc = async (req: Request, res: Response) => {
    const id = parseDocId(String(req.params.id ?? ''))
    if (id === null) {
      res.status(400).json({ error: 'bad document id' })
      return null
    }
    if (ctx.secret !== undefined) {
      const v = verifyToken(ctx.secret, tokenOf(req), id)
      if (!v.ok) {
        const status = v.problem === 'wrong-document' ? 403 : 401
        res.status(status).json({ error: `token ${v.problem}` })
        return null
      }
    }
    try {
      return await ctx.registry.read(id)
    } catch (err) {
      if (!(err instanceof CapacityError)) ctx.log.error({ doc: id, err }, 'REST read failed')
      res.status(503).set('Retry-After', '5').json({ error: 'document unavailable' })
      return null
    }
  }

  app.get('/api/docs/:id', async (req, res) => {
    const entry = await readDoc(req, res)
    if (entry === null) return
    res.json({ id: entry.id, version: entry.doc.version(), text: entry.doc.toString() })
  })

  app.get('/api/docs/:id/text', async (req, res) => {
    const entry = await readDoc(req, res)
    if (entry === null) return
    res.type('text/plain; charset=utf-8').send(entry.doc.toString())
  })

  return app
}
