// The offline tools' public entry: the codec applied to files (encode, decode, analyze), and
// synthetic QEVM streams for tests and for benchmarks when no recorded stream exists.
export { checkRelayFile, decodeFrames, decodeStreams, encodeStreams } from './offline.ts';
export type { EncodeResult, OfflineOptions } from './offline.ts';
export { analyze, formatReport, plainZstdSize } from './analyze.ts';
export type { AnalyzeReport } from './analyze.ts';
export { Rng, syntheticQemuStream } from './synthetic.ts';
export type { SyntheticOptions } from './synthetic.ts';
