/**
 * Recognises PNG, JPEG and WEBP by their magic bytes (never by file name or Content-Type) and
 * reads the dimensions from the headers, without decoding: PNG IHDR, JPEG SOFn, WEBP VP8/VP8L/VP8X.
 */
import { open } from 'node:fs/promises';
import { MiB } from '../util/units.ts';

/** The image types the bot accepts, for references and results alike. */
export const IMAGE_MIMES = ['image/png', 'image/jpeg', 'image/webp'] as const;
export type ImageMime = (typeof IMAGE_MIMES)[number];

export interface SniffedImage {
  mime: ImageMime;
  width?: number;
  height?: number;
}

/** Enough bytes to recognise any of the three formats. */
export const SNIFF_MIN_BYTES = 32;

export const EXTENSION_BY_MIME: Readonly<Record<ImageMime, string>> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
};

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const startsWith = (b: Uint8Array, sig: readonly number[], at = 0) => sig.every((v, i) => b[at + i] === v);
const ascii = (b: Uint8Array, at: number, len: number) => String.fromCharCode(...b.subarray(at, at + len));
const u16be = (b: Uint8Array, at: number) => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
const u16le = (b: Uint8Array, at: number) => (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
const u24le = (b: Uint8Array, at: number) => (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16);
const u32be = (b: Uint8Array, at: number) => (((b[at] ?? 0) << 24) >>> 0) + (((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0));

const withDims = (mime: ImageMime, width: number, height: number): SniffedImage =>
  width > 0 && height > 0 ? { mime, width, height } : { mime };

function sniffPng(b: Uint8Array): SniffedImage {
  // IHDR is always the first chunk: length(4) "IHDR" width(4) height(4).
  if (b.length >= 24 && ascii(b, 12, 4) === 'IHDR') return withDims('image/png', u32be(b, 16), u32be(b, 20));
  return { mime: 'image/png' };
}

/** SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not. */
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function sniffJpeg(b: Uint8Array): SniffedImage {
  let i = 2;
  while (i + 3 < b.length) {
    if (b[i] !== 0xff) return { mime: 'image/jpeg' }; // lost sync: keep the type, skip the size
    let marker = b[i + 1] ?? 0;
    while (marker === 0xff && i + 2 < b.length) {
      i++; // fill bytes
      marker = b[i + 1] ?? 0;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2; // standalone markers
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) break; // end of image / start of scan: no frame header before
    const len = u16be(b, i + 2);
    if (isSof(marker)) {
      if (i + 9 > b.length) break;
      return withDims('image/jpeg', u16be(b, i + 7), u16be(b, i + 5));
    }
    if (len < 2) break;
    i += 2 + len;
  }
  return { mime: 'image/jpeg' };
}

function sniffWebp(b: Uint8Array): SniffedImage {
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8 ' && b.length >= 30 && startsWith(b, [0x9d, 0x01, 0x2a], 23)) {
    return withDims('image/webp', u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff);
  }
  if (chunk === 'VP8L' && b.length >= 25 && b[20] === 0x2f) {
    const bits = ((b[21] ?? 0) | ((b[22] ?? 0) << 8) | ((b[23] ?? 0) << 16) | ((b[24] ?? 0) << 24)) >>> 0;
    return withDims('image/webp', (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  if (chunk === 'VP8X' && b.length >= 30) return withDims('image/webp', u24le(b, 24) + 1, u24le(b, 27) + 1);
  return { mime: 'image/webp' };
}

/** The image type (and size when the header is within `bytes`), or undefined when not PNG/JPEG/WEBP. */
export function sniffImage(bytes: Uint8Array): SniffedImage | undefined {
  if (bytes.length >= 8 && startsWith(bytes, PNG_SIGNATURE)) return sniffPng(bytes);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return sniffJpeg(bytes);
  if (bytes.length >= 16 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP' && /^VP8[ LX]$/.test(ascii(bytes, 12, 4))) {
    return sniffWebp(bytes);
  }
  return undefined;
}

/**
 * Sniffs a file on disk reading only its head (64 KiB, or up to `maxHeadBytes` for JPEGs whose
 * EXIF/ICC segments push the frame header further).
 */
export async function sniffFile(path: string, maxHeadBytes = 4 * MiB): Promise<SniffedImage | undefined> {
  const fh = await open(path, 'r');
  try {
    let size = 64 * 1024;
    for (;;) {
      const buf = new Uint8Array(size);
      const { bytesRead } = await fh.read(buf, 0, size, 0);
      const head = buf.subarray(0, bytesRead);
      const found = sniffImage(head);
      if (!found || found.width !== undefined || bytesRead < size || size >= maxHeadBytes) return found;
      size = Math.min(maxHeadBytes, size * 8);
    }
  } finally {
    await fh.close();
  }
}
