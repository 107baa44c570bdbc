import { Html } from '../html.js';

/**
 * Data for page scripts as a JSON block. A `type="application/json"` script is never
 * executed, so the CSP's ban on inline script is kept; `<` is escaped so the text cannot
 * close the element.
 */
export function dataBlock(data: unknown): Html {
  const json = JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return new Html(`<script type="application/json" id="kanmon-data">${json}</script>`);
}
