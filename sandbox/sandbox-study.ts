// The sandbox study's stand-ins, resolved: a study file cannot know the team server's port and host key.
import { parseStudy } from '../src/study/load.js';
import type { Study } from '../src/study/schema.js';
import type { TeamServerInfo } from './team-server.js';

/**
 * The host the sandbox study's phase 1 names (studies/rq1.sandbox.yaml). `.invalid` never resolves (RFC 2606): a
 * study that was not resolved fails to connect instead of reaching some real machine.
 */
export const SANDBOX_TEAM_SERVER_HOST = 'team-server.sandbox.invalid';

/**
 * The study with every `ssh-host` target that names {@link SANDBOX_TEAM_SERVER_HOST} pointed at the sandbox daemon's
 * team server: host, port, username, pinned host key, workspace and the stand-in's own GPU lock root. Validated again
 * (the worker re-validates workflow inputs with the same schema). Other targets are left as they are.
 * @throws StudyInvalidError when the result is not a valid study (e.g. a project path the workspace rules refuse).
 */
export function sandboxStudy(study: Study, info: { teamServer: TeamServerInfo }): Study {
  const t = info.teamServer;
  const phases = study.phases.map((p) =>
    p.target.kind === 'ssh-host' && p.target.host === SANDBOX_TEAM_SERVER_HOST
      ? {
          ...p,
          target: {
            ...p.target,
            host: t.host,
            port: t.port,
            username: t.username,
            hostKeySha256: t.hostKeySha256,
            workspaceDir: t.workspaceDir,
            gpuLock: { ...p.target.gpuLock, dir: t.gpuLockDir },
          },
        }
      : p,
  );
  return parseStudy({ ...study, phases }, `${study.study} (sandbox team server)`);
}
