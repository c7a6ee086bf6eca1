// The effects of a 'pod' fault on one pod: list lag, no ports, refused logins, errors, vanishing, drops, key swaps,
// hostility, a broken SFTP server.
import { writeFile } from 'node:fs/promises';
import type { PodFaultEffect } from './control.js';
import type { PodFaultParams } from './faults.js';
import { writeHostileShim } from './hostile.js';
import type { EmulatorStateOptions, PodRecord } from './model.js';
import { podLog } from './pods.js';
import type { PodLifecycle } from './pods.js';
import { newHostKey, podPaths } from './sshd.js';

export class PodFaults {
  readonly #o: EmulatorStateOptions;
  readonly #pods: PodLifecycle;

  constructor(deps: { options: EmulatorStateOptions; lifecycle: PodLifecycle }) {
    this.#o = deps.options;
    this.#pods = deps.lifecycle;
  }

  apply(pod: PodRecord, effect: PodFaultEffect, params: PodFaultParams): void {
    const { afterMs } = params;
    this.#o.log(`fault: pod ${pod.id} ${effect}${afterMs > 0 ? ` after ${afterMs} ms` : ''}`);
    switch (effect) {
      case 'list-lag':
        pod.unlistedUntilMs = Date.now() + afterMs;
        return;
      case 'hostile-results':
        pod.hostile = { linkTarget: params.linkTarget, oversizeBytes: params.oversizeBytes };
        writeHostileShim(pod.dir, pod.hostile);
        // A running sshd got its session PATH at start: restart it in place so new sessions see the shim.
        if (pod.sshd) this.#pods.restartSshd(pod, 'hostile PATH').catch(() => undefined);
        return;
      case 'sftp-broken':
        pod.faults.sftpBroken = true;
        // sshd reads its Subsystem lines only at start: restart it in place without SFTP (exec sessions live on).
        if (pod.sshd) this.#pods.restartSshd(pod, 'no SFTP subsystem').catch(() => undefined);
        return;
      case 'host-key-swap':
        this.#swapHostKeyAfterLogins(pod, params.afterLogins);
        return;
      case 'no-ports':
        pod.faults.noPorts = true;
        if (pod.published) {
          void this.#pods.interrupt(pod).then(() => {
            if (pod.status === 'RUNNING') pod.runtimeVisible = true;
          });
        }
        return;
      case 'sshd-refuses':
        pod.faults.sshdRefuses = true;
        // sshd reads authorized_keys on every attempt, so emptying it takes effect at once.
        if (pod.sshd) void writeFile(podPaths(pod.dir).authorizedKeys, '').catch(() => undefined);
        return;
      case 'ssh-drop':
        this.#after(pod, afterMs, () => {
          const dropped = pod.sshd ? this.#o.sshd.dropConnections(pod.sshd) : 0;
          podLog(pod, 'system', `network drop: ${dropped} SSH connection(s) cut (fault)`);
        });
        return;
      case 'error':
      case 'vanish': {
        const run = async (): Promise<void> => {
          if (!this.#pods.isCurrent(pod)) return;
          if (effect === 'vanish') {
            await this.#pods.destroy(pod, 'vanished');
            return;
          }
          await this.#pods.interrupt(pod);
          this.#pods.setStatus(pod, 'ERROR');
          podLog(pod, 'system', 'container exited with an error (fault)');
        };
        this.#after(pod, afterMs, () => {
          run().catch((err: unknown) => this.#o.log(`pod ${pod.id}: fault failed: ${String(err)}`));
        });
        return;
      }
    }
  }

  /** Waits on the pod's own sshd log (logins accepted), so the swap lands right after the readiness check. */
  #swapHostKeyAfterLogins(pod: PodRecord, afterLogins: number): void {
    const fail = (err: unknown): void => this.#o.log(`pod ${pod.id}: host key swap failed: ${String(err)}`);
    const poll = async (): Promise<void> => {
      if (!this.#pods.isCurrent(pod)) return;
      const logins = pod.sshd ? await this.#o.sshd.acceptedLogins(pod.dir) : -1;
      if (pod.sshd && logins >= afterLogins) {
        await newHostKey({ dir: pod.dir, podId: pod.id, sshKeygenPath: this.#o.sshKeygenPath });
        if (await this.#pods.restartSshd(pod, 'new host key')) pod.hostKeySwaps++;
        return;
      }
      this.#after(pod, 50, () => {
        poll().catch(fail);
      });
    };
    poll().catch(fail);
  }

  /** Runs `step` after `delayMs` on a fault timer (cancelled only when the pod is deleted or the emulator closes). */
  #after(pod: PodRecord, delayMs: number, step: () => void): void {
    const timer = setTimeout(() => {
      pod.faultTimers.delete(timer);
      step();
    }, delayMs);
    pod.faultTimers.add(timer);
  }
}
