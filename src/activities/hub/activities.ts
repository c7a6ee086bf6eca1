import { cancellationSignal } from '@temporalio/activity';
import type { FetchModelMetadataInput, ModelMetadata } from './types.js';
import type { HubApi } from './client.js';
import { HubApiError } from './errors.js';

export interface HubActivityDeps {
  hub: HubApi;
}

export function createHubActivities({ hub }: HubActivityDeps) {
  return {
    /**
     * The model's files, sizes and sha256s at a revision, fetched once per session: the download is pinned to the
     * commit and verified against this list (it lives in workflow history; it holds no secret).
     */
    async fetchModelMetadata(input: FetchModelMetadataInput): Promise<ModelMetadata> {
      const info = await hub.modelInfo(input.repoId, input.revision, { signal: cancellationSignal() });
      const files = info.siblings.map((s) => ({
        path: s.rfilename,
        bytes: s.lfs?.size ?? s.size ?? null,
        sha256: s.lfs?.sha256 ?? null,
      }));
      const unsized = files.filter((f) => f.bytes === null).map((f) => f.path);
      if (unsized.length) {
        throw new HubApiError(`the Hub gave no size for ${unsized.join(', ')}`, null, `/api/models/${input.repoId}`);
      }
      const sized = files.map((f) => ({ ...f, bytes: f.bytes ?? 0 }));
      return {
        repoId: input.repoId,
        revision: input.revision,
        commitSha: info.sha,
        files: sized,
        totalBytes: sized.reduce((a, f) => a + f.bytes, 0),
      };
    },
  };
}
