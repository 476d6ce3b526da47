/** Bytes in a mebibyte: sizes in the code are written as multiples of it (`8 * MiB`). */
export const MiB = 1024 * 1024;
