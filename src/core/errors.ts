/**
 * Typed errors with stable exit codes. Every face maps a KindlerError to the same exit code.
 */

/** Stable, documented exit codes. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  refused: 5,
} as const;

export type ErrorKind = 'failed' | 'usage' | 'notFound' | 'conflict' | 'refused';

export class KindlerError extends Error {
  readonly kind: ErrorKind;
  /** The input field the error is about, when there is one. */
  readonly field?: string;
  constructor(kind: ErrorKind, message: string, field?: string) {
    super(message);
    this.kind = kind;
    this.field = field;
  }
  get exitCode(): number {
    return EXIT[this.kind];
  }
}

export const usageError = (message: string, field?: string) => new KindlerError('usage', message, field);
export const notFound = (message: string) => new KindlerError('notFound', message);
export const conflict = (message: string, field?: string) => new KindlerError('conflict', message, field);
export const failed = (message: string) => new KindlerError('failed', message);
export const refused = (message: string) => new KindlerError('refused', message);
