/**
 * multipart/form-data bodies (RFC 7578) as pieces: each field's head, its content as the caller
 * has it, and the closing delimiter, never copied into one buffer. A Slack upload's single `file`
 * field is streamed from disk between its head and the tail (file-upload.ts); a Discord message's
 * `payload_json` and `files[n]` are bytes in memory (src/platforms/discord/messages.ts). An array
 * of pieces can be sent again as it is, when a request is retried.
 */
import { randomUUID } from 'node:crypto';

export interface MultipartField {
  name: string;
  /** A file field's name for the file. */
  filename?: string | undefined;
  contentType: string;
}

/** One body's boundary and the framing around its fields. */
export class Multipart {
  readonly boundary = `----imagine-${randomUUID()}`;
  #fields = 0;

  /** The request's Content-Type. */
  get contentType(): string {
    return `multipart/form-data; boundary=${this.boundary}`;
  }

  /** What comes before the next field's content (after the previous field's, if any). */
  head(field: MultipartField): Buffer {
    const disposition = `form-data; name="${safe(field.name)}"${field.filename !== undefined ? `; filename="${safe(field.filename)}"` : ''}`;
    const before = this.#fields++ === 0 ? '' : '\r\n';
    return Buffer.from(`${before}--${this.boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: ${field.contentType}\r\n\r\n`);
  }

  /** The closing delimiter, after the last field's content. */
  tail(): Buffer {
    return Buffer.from(`\r\n--${this.boundary}--\r\n`);
  }
}

/** A name inside the quotes of a Content-Disposition: quotes and line breaks would end it early. */
const safe = (name: string) => name.replace(/["\r\n]/g, '_');

/** A whole body from fields in memory. */
export interface MultipartBody {
  contentType: string;
  /** Bytes in all: the request's Content-Length. */
  length: number;
  pieces: Uint8Array[];
}

export function multipartBody(fields: readonly (MultipartField & { data: Uint8Array })[]): MultipartBody {
  const form = new Multipart();
  const pieces: Uint8Array[] = [];
  for (const field of fields) pieces.push(form.head(field), field.data);
  pieces.push(form.tail());
  return { contentType: form.contentType, length: pieces.reduce((n, p) => n + p.byteLength, 0), pieces };
}
