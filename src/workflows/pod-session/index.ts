// One model's pod session: the workflow (workflow.ts) and the steps it is made of.
export { podSessionWorkflow } from './workflow.js';
