// Public surface of the SSH system: the connector and reconnecting shell every pod-side system works through, shell
// fragments, the activity's session, checksums and the typed errors.
export { SshPodConnector } from './connector.js';
export { hostKeyFingerprint } from './host-key.js';
export type { ConnectOptions, ExecResult, PodConnector, PodShell } from './pod-shell.js';
export { ReconnectingPodShell } from './reconnecting-shell.js';
export type { ReconnectOptions } from './reconnecting-shell.js';
export { sha256File } from './checksum.js';
export { HostKeyMismatchError, RemoteCommandError, SshError, SshReconnectBudgetError } from './errors.js';
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
