/**
 * The embeddable editor's stylesheet: ProseMirror's required rules, the editor
 * surface, the toolbar, and remote carets, name labels and selections. Injected once
 * per document by `createEditor` (a `<style id="polyphony-editor-style">` in `<head>`),
 * before other styles so a page can override any rule.
 *
 * Custom properties a page can set: --pp-font, --pp-text, --pp-muted, --pp-border,
 * --pp-accent, --pp-surface, --pp-toolbar.
 */

export const EDITOR_STYLE_ID = 'polyphony-editor-style'

export const EDITOR_CSS = `
.pp-editor {
  --pp-font: ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
  --pp-text: #1f2328;
  --pp-muted: #6b7280;
  --pp-border: #e5e7eb;
  --pp-accent: #4f46e5;
  --pp-surface: #ffffff;
  --pp-toolbar: #f9fafb;
  display: flex;
  flex-direction: column;
  border: 1px solid var(--pp-border);
  border-radius: 10px;
  background: var(--pp-surface);
  color: var(--pp-text);
  font-family: var(--pp-font);
  overflow: hidden;
}
.pp-toolbar {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  gap: 2px;
  padding: 6px 8px;
  background: var(--pp-toolbar);
  border-bottom: 1px solid var(--pp-border);
  position: sticky;
  top: 0;
  z-index: 2;
}
.pp-toolbar button {
  min-width: 32px;
  height: 30px;
  padding: 0 8px;
  border: 1px solid transparent;
  border-radius: 6px;
  background: transparent;
  color: var(--pp-text);
  font: 500 13px/1 var(--pp-font);
  cursor: pointer;
  transition: background-color 0.12s, color 0.12s;
}
.pp-toolbar button:hover:not(:disabled) { background: #eef0f3; }
.pp-toolbar button.pp-active {
  background: color-mix(in srgb, var(--pp-accent) 12%, transparent);
  color: var(--pp-accent);
  border-color: color-mix(in srgb, var(--pp-accent) 25%, transparent);
}
.pp-toolbar button:disabled { color: #c0c4cc; cursor: default; }
.pp-toolbar button:focus-visible { outline: 2px solid var(--pp-accent); outline-offset: 1px; }
.pp-toolbar .pp-bold { font-weight: 700; }
.pp-toolbar .pp-italic { font-style: italic; font-family: Georgia, serif; }
.pp-toolbar .pp-code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.pp-toolbar-sep { width: 1px; height: 18px; margin: 0 6px; background: var(--pp-border); }

.pp-editor .ProseMirror {
  position: relative;
  min-height: 12em;
  padding: 16px 20px;
  outline: none;
  font-size: 16px;
  line-height: 1.6;
  word-wrap: break-word;
  white-space: pre-wrap;
  white-space: break-spaces;
  -webkit-font-variant-ligatures: none;
  font-variant-ligatures: none;
  font-feature-settings: 'liga' 0;
}
.ProseMirror pre { white-space: pre-wrap; }
.ProseMirror li { position: relative; }
.ProseMirror-hideselection *::selection { background: transparent; }
.ProseMirror-hideselection *::-moz-selection { background: transparent; }
.ProseMirror-hideselection { caret-color: transparent; }
.ProseMirror [draggable][contenteditable=false] { user-select: text; }
.ProseMirror-selectednode { outline: 2px solid #8cf; }
li.ProseMirror-selectednode { outline: none; }
li.ProseMirror-selectednode:after {
  content: ''; position: absolute; left: -32px; right: -2px; top: -2px; bottom: -2px;
  border: 2px solid #8cf; pointer-events: none;
}
img.ProseMirror-separator { display: inline !important; border: none !important; margin: 0 !important; }
.ProseMirror-gapcursor { display: none; pointer-events: none; position: absolute; }

.pp-editor .ProseMirror > :first-child { margin-top: 0; }
.pp-editor .ProseMirror p { margin: 0 0 0.6em; }
.pp-editor .ProseMirror h1 { font-size: 1.75em; line-height: 1.25; margin: 0.8em 0 0.4em; }
.pp-editor .ProseMirror h2 { font-size: 1.35em; line-height: 1.3; margin: 0.8em 0 0.4em; }
.pp-editor .ProseMirror h3 { font-size: 1.15em; margin: 0.8em 0 0.4em; }
.pp-editor .ProseMirror blockquote {
  margin: 0.6em 0; padding: 0.1em 0 0.1em 1em;
  border-left: 3px solid var(--pp-border); color: var(--pp-muted);
}
.pp-editor .ProseMirror ul, .pp-editor .ProseMirror ol { padding-left: 1.6em; margin: 0 0 0.6em; }
.pp-editor .ProseMirror code {
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em;
  background: #f3f4f6; border-radius: 4px; padding: 0.1em 0.3em;
}
.pp-editor .ProseMirror pre {
  background: #f3f4f6; border-radius: 8px; padding: 0.8em 1em;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em;
}
.pp-editor .ProseMirror pre code { background: none; padding: 0; }
.pp-editor .ProseMirror a { color: var(--pp-accent); text-decoration: underline; }
.pp-editor .ProseMirror hr { border: none; border-top: 1px solid var(--pp-border); margin: 1em 0; }
.pp-editor .ProseMirror img { max-width: 100%; }

.pp-remote-caret {
  position: relative;
  margin-left: -1px;
  margin-right: -1px;
  border-left: 2px solid;
  word-break: normal;
  pointer-events: none;
}
.pp-remote-labels {
  position: absolute;
  left: -2px;
  top: -1.35em;
  display: flex;
  gap: 2px;
  white-space: nowrap;
  user-select: none;
  z-index: 1;
}
.pp-remote-label {
  padding: 1px 6px;
  border-radius: 4px;
  color: #fff;
  font: 600 11px/1.35 var(--pp-font, system-ui, sans-serif);
  font-style: normal;
  box-shadow: 0 1px 2px rgb(0 0 0 / 0.15);
}
.pp-remote-label:first-child { border-bottom-left-radius: 0; }
.pp-remote-selection { border-radius: 2px; }
`

/** Adds the stylesheet to `doc` unless it is there already. */
export function injectEditorStyle(doc: Document): void {
  if (doc.getElementById(EDITOR_STYLE_ID)) return
  const style = doc.createElement('style')
  style.id = EDITOR_STYLE_ID
  style.textContent = EDITOR_CSS
  doc.head.prepend(style)
}
