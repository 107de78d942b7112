// FAT32 geometry for a partition size: the cluster size from the spec's
// FAT32 table (the one mkfs.fat follows: 512-byte clusters up to 260 MB,
// then 4, 8, 16 and 32 KiB), the smallest FAT that maps every cluster, and
// the reserved sector count (at least 32) padded so that the data region
// starts on a 64 KiB boundary of the partition: every cluster run that starts
// on a 64 KiB boundary can then hold pool blocks as they are.

import { FatError, MAX_CLUSTERS, MIN_CLUSTERS, NUM_FATS, SECTOR } from './structures';

export const ALIGN = 65536; // data region and pool-block runs: 64 KiB grains
const ALIGN_SECTORS = ALIGN / SECTOR;
const MIN_RSVD_SECTORS = 32; // as mkfs.fat and Microsoft's FORMAT for FAT32
const MAX_TOTAL_SECTORS = 0xffffffff; // BPB_TotSec32

// The spec's DskTableFAT32: (up to this many sectors, sectors per cluster)
const CLUSTER_TABLE: [number, number][] = [
  [66600, 0], // too small for FAT32
  [532480, 1], // 260 MB: 512 B clusters
  [16777216, 8], // 8 GB: 4 KiB
  [33554432, 16], // 16 GB: 8 KiB
  [67108864, 32], // 32 GB: 16 KiB
  [MAX_TOTAL_SECTORS, 64], // 32 KiB
];

export interface FatGeometry {
  totSec: number; // BPB_TotSec32
  secPerClus: number; // BPB_SecPerClus
  clusterBytes: number;
  rsvdSecCnt: number; // BPB_RsvdSecCnt
  fatSz: number; // BPB_FATSz32, sectors per FAT
  clusters: number; // CountOfClusters: cluster numbers 2 .. clusters + 1
  dataStart: number; // partition byte offset of cluster 2 (a multiple of ALIGN)
  secPerTrk: number; // BPB_SecPerTrk: a divisor of totSec (mtools checks that)
  numHeads: number;
}

export function fatGeometry(partitionBytes: number): FatGeometry {
  if (!Number.isSafeInteger(partitionBytes) || partitionBytes <= 0 || partitionBytes % SECTOR !== 0) {
    throw new FatError(`FAT32 partition size ${partitionBytes} is not a positive multiple of ${SECTOR} bytes`);
  }
  const totSec = partitionBytes / SECTOR;
  if (totSec > MAX_TOTAL_SECTORS) throw new FatError(`FAT32 partition of ${partitionBytes} bytes is larger than 2 TiB`);
  const secPerClus = CLUSTER_TABLE.find(([max]) => totSec <= max)![1];
  if (secPerClus === 0) {
    throw new FatError(`a ${partitionBytes}-byte partition is too small for FAT32 (at least ${66601 * SECTOR} bytes: ${MIN_CLUSTERS} clusters)`);
  }
  // the smallest FAT holding an entry for clusters 0 .. clusters + 1
  let rsvdSecCnt = MIN_RSVD_SECTORS;
  const fits = (fatSz: number) => {
    const clusters = Math.floor((totSec - rsvdSecCnt - NUM_FATS * fatSz) / secPerClus);
    return Math.ceil(((clusters + 2) * 4) / SECTOR) <= fatSz;
  };
  let fatSz = Math.ceil(((Math.floor((totSec - rsvdSecCnt) / secPerClus) + 2) * 4) / SECTOR); // as if the FATs took no room: enough
  while (fatSz > 1 && fits(fatSz - 1)) fatSz--; // fits() holds for every size from the smallest on
  // pad the reserved area so that the data region starts on a 64 KiB boundary
  rsvdSecCnt += (ALIGN_SECTORS - ((rsvdSecCnt + NUM_FATS * fatSz) % ALIGN_SECTORS)) % ALIGN_SECTORS;
  const dataSec = rsvdSecCnt + NUM_FATS * fatSz;
  const clusters = Math.floor((totSec - dataSec) / secPerClus);
  if (clusters < MIN_CLUSTERS) {
    throw new FatError(`a ${partitionBytes}-byte partition holds only ${clusters} clusters of ${secPerClus * SECTOR} bytes; FAT32 needs at least ${MIN_CLUSTERS}`);
  }
  if (clusters > MAX_CLUSTERS) throw new FatError(`a ${partitionBytes}-byte partition needs more than FAT32's ${MAX_CLUSTERS} clusters`);
  const secPerTrk = [32, 16, 8, 4, 2, 1].find((s) => totSec % s === 0)!;
  return {
    totSec, secPerClus, clusterBytes: secPerClus * SECTOR, rsvdSecCnt, fatSz, clusters, dataStart: dataSec * SECTOR,
    secPerTrk, numHeads: 64,
  };
}
