/**
 * HTTP routes (express): the demo page, health, metrics and the document REST API.
 *
 * `GET /api/docs/:id` and `/api/docs/:id/text` need, when a secret is set, a token for that
 * document (`Authorization: Bearer T` or `?token=T`; either role may read): none or an invalid
 * one answers 401, one for another document 403. A document that cannot be read from storage
 * answers 503, never an empty text. A rich document is projected with the server's schema
 * (server/rich-projection.ts): its ProseMirror JSON as `doc` and its text with blocks on lines
 * of their own; one that schema cannot project answers 422 with the reason.
 */
import express, { type Request, type Response } from 'express'
import type { Schema } from 'prosemirror-model'
import { verifyToken } from './auth.ts'
import { CapacityError, type DocumentRegistry } from './documents.ts'
import type { Logger } from './log.ts'
import type { ServerMetrics } from './metrics.ts'
import { demoBundle, demoPage, demoStyles } from './demo-bundle.ts'
import { checkDocId } from './ws-endpoint.ts'
import { ProjectionError, documentView, type DocumentView } from './rich-projection.ts'

/** What the routes need. */
export interface HttpContext {
  readonly registry: DocumentRegistry
  readonly secret: string | undefined
  readonly log: Logger
  readonly metrics: ServerMetrics
  /** The schema rich documents are projected with for REST reads. */
  readonly schema: Schema
}

function tokenOf(req: Request): string | null {
  const h = req.headers.authorization
  // The scheme name is case-insensitive (RFC 9110 11.1).
  if (typeof h === 'string' && /^bearer /i.test(h)) return h.slice(7).trim()
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

  app.get('/demo.css', (_req, res) => {
    res.type('text/css').send(demoStyles())
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
    // Express has decoded the path parameter already (decoding it again would turn `a%2541`,
    // the id `a%41`, into `aA`).
    const id = checkDocId(String(req.params.id ?? ''))
    if (id === null) {
      res.status(400).json({ error: 'bad document id' })
      return null
    }
    if (ctx.secret !== undefined) {
      const v = verifyToken(ctx.secret, tokenOf(req), id)
      if (!v.ok) {
        // 401 for a token of another document too: API.md asks for a token for this one.
        res.status(401).json({ error: `token ${v.problem}` })
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

  const viewDoc = async (
    req: Request,
    res: Response,
  ): Promise<(DocumentView & { id: string }) | null> => {
    const entry = await readDoc(req, res)
    if (entry === null) return null
    try {
      return { id: entry.id, ...documentView(entry.doc, ctx.schema) }
    } catch (err) {
      if (!(err instanceof ProjectionError)) throw err
      ctx.log.warn({ doc: entry.id, err }, 'REST projection failed')
      res.status(422).json({ error: err.message })
      return null
    }
  }

  app.get('/api/docs/:id', async (req, res) => {
    const view = await viewDoc(req, res)
    if (view === null) return
    res.json(view)
  })

  app.get('/api/docs/:id/text', async (req, res) => {
    const view = await viewDoc(req, res)
    if (view === null) return
    res.type('text/plain; charset=utf-8').send(view.text)
  })

  return app
}
