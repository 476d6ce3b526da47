/** Bytes in a mebibyte: sizes in the code are written as multiples of it (`8 * MiB`). */
export const MiB = 1024 * 1024;

/** A size as users read it: `12.3 MB` (in mebibytes, one decimal). */
export const formatMiB = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MB`;
