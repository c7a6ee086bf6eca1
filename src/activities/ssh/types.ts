/**
 * How an activity reaches a pod over SSH, as its input names it. Pure types, safe for workflow code (which
 * imports them with `import type`). Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */

/** How to reach a pod over SSH; the private key stays in the worker. */
export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /**
   * The host key the server must present, OpenSSH style (`SHA256:` + base64 without padding, what `ssh-keygen -lf`
   * prints). A rented pod's is pinned by waitForPodReady; the team's server's comes from the study file. Not secret.
   */
  hostKeySha256?: string;
}

/** A reached pod: SSH target plus its volume directory. */
export interface PodEndpoint {
  ssh: SshTarget;
  workspaceDir: string;
}
