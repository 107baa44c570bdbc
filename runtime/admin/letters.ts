/** A file name for a user's letter (the CLI's rule, shared so a batch from either looks the same). */
export { letterFileName } from '../cli/enrollment-commands.js';
