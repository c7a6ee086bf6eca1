// The shared results store: where several workers keep one copy of the results. Every worker still works in its own
// results folder (the Python analysis and the CLI read files); a store makes that folder a cache. Activities pull what
// they read before reading it and push what they wrote before they complete, so an activity that completed on one
// worker left its files where an activity on any other worker finds them.

/** Paths are relative to the results folder, '/'-separated, e.g. `rq1/phase2a/qwen3-4b/zero-shot/r1/manifest.json`. */
export interface ResultsStore {
  /** Where the results are shared, for messages (`s3://bucket/prefix`); null when the results folder is all there is. */
  readonly url: string | null;
  /** Uploads these files from the results folder, skipping those whose bytes the store already holds. */
  push(input: { paths: string[] }): Promise<{ uploaded: string[] }>;
  /**
   * Downloads every stored file below `prefix` whose bytes differ from the local copy (the store wins). With `prune`,
   * local files below `prefix` that the store does not hold are removed (records that were deleted elsewhere). `prefix`
   * '' is the whole store.
   */
  pull(input: {
    prefix: string;
    prune?: boolean;
    /** Only the paths this accepts are pulled (and pruned): the kept-pod records of every study, say. */
    only?: (path: string) => boolean;
  }): Promise<{ downloaded: string[]; removed: string[] }>;
  /** Deletes these files from the store; files it does not hold are fine. */
  remove(input: { paths: string[] }): Promise<void>;
}

/** One worker, one results folder: nothing to share. */
export const LOCAL_ONLY_STORE: ResultsStore = {
  url: null,
  push: () => Promise.resolve({ uploaded: [] }),
  pull: () => Promise.resolve({ downloaded: [], removed: [] }),
  remove: () => Promise.resolve(),
};
