// The one search every offset table here needs (extents, recipe segments,
// pool blocks): the last entry starting at or before a position.

/** Index of the last element of the ascending `starts[lo..hi]` that is <= `pos` (`lo` when none is). */
export function lastAtOrBefore(starts: ArrayLike<number>, pos: number, lo = 0, hi = starts.length - 1): number {
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid] <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
