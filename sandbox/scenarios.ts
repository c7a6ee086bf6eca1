// Named fault scenarios for the sandbox: tests apply them in-process, users with
// `npm run start-workflow -- <phase> --sandbox --scenario <name>` against the running daemon.
import type { HfFault } from './hf-server/index.js';
import type { CapacityUpdate, Fault } from './runpod-emulator/index.js';

/** What a scenario may change; implemented in-process (tests) and over the daemon's HTTP control API (CLI). */
export interface SandboxControl {
  setCapacity(update: CapacityUpdate): Promise<void>;
  injectRunPodFault(fault: Fault): Promise<void>;
  clearRunPodFaults(): Promise<void>;
  setHfFaults(faults: HfFault[]): Promise<void>;
}

export interface Scenario {
  name: string;
  description: string;
  apply(control: SandboxControl): Promise<void>;
}

const scenarios: Scenario[] = [
  {
    name: 'none',
    description: 'no faults: clears every injected fault',
    async apply(c) {
      await c.clearRunPodFaults();
      await c.setHfFaults([]);
    },
  },
];

export const SCENARIOS: ReadonlyMap<string, Scenario> = new Map(scenarios.map((s) => [s.name, s]));

export function scenarioByName(name: string): Scenario {
  const s = SCENARIOS.get(name);
  if (!s) throw new Error(`unknown scenario ${name}; known: ${[...SCENARIOS.keys()].join(', ')}`);
  return s;
}

/** The control over HTTP, for a daemon running in another process. */
export function httpSandboxControl(urls: { runpodControlUrl: string; hfUrl: string }): SandboxControl {
  const post = async (url: string, body: unknown, method = 'POST') => {
    const res = await fetch(url, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  };
  return {
    setCapacity: (update) => post(`${urls.runpodControlUrl}/capacity`, update),
    injectRunPodFault: (fault) => post(`${urls.runpodControlUrl}/faults`, fault),
    clearRunPodFaults: () => post(`${urls.runpodControlUrl}/faults`, {}, 'DELETE'),
    setHfFaults: (faults) => post(`${urls.hfUrl}/_control/faults`, { faults }),
  };
}
