// Public surface of the SSH system: the connector and reconnecting shell every pod-side system works through, shell
// fragments, the activity's session, checksums and the typed errors.
export { hostKeyFingerprint, ReconnectingPodShell, SshPodConnector } from './client.js';
export type { ConnectOptions, ExecResult, PodConnector, PodShell } from './client.js';
export { sha256File } from './checksum.js';
export { HostKeyMismatchError, RemoteCommandError, SshError } from './errors.js';
export type { SshErrorKind } from './errors.js';
export {
  envPrefix,
  findProcesses,
  isAlive,
  killDetached,
  killPids,
  parseJson,
  q,
  startDetached,
  tail,
  touchHeartbeat,
  workspaceProbe,
} from './remote.js';
export { remoteSha256, runChecked, shellsOver, withActivityShell } from './session.js';
export type * from './types.js';
