import { DefaultLogger, Runtime } from '@temporalio/worker';

// Worker and workflow logs at WARN and above keep test output readable; install once per process.
try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // already installed in this process
}
