/**
 * User colours: a pleasant colour derived from a name (stable across sessions and
 * replicas), and a guard that lets only plain colour syntax reach inline styles
 * (presence colours come from other people).
 */

/** A pleasant, readable colour for `name`: a hue from a hash, fixed saturation and lightness. */
export function colorFor(name: string): string {
  let h = 2166136261
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619)
  const hue = (h >>> 0) % 360
  return `hsl(${hue}, 65%, 45%)`
}

const SAFE_COLOR =
  /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}|(rgb|rgba|hsl|hsla)\(\s*[0-9.]+(deg)?%?(\s*[,\s/]\s*[0-9.]+%?){2,3}\s*\))$/

/** `color` when it is a plain #hex, named, rgb() or hsl() colour, else the colour derived from `name`. */
export function safeColor(color: string | undefined, name: string): string {
  return color !== undefined && color.length <= 64 && SAFE_COLOR.test(color.trim())
    ? color.trim()
    : colorFor(name)
}
