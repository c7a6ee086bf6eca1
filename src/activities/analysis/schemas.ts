import { z } from 'zod';

// The analysis's output (docs/analysis.md). Loose objects: only the fields the orchestrator reads are checked.

const num = z.number().nullable();
const verdict = z.enum(['improves', 'degrades', 'inconclusive']).nullable();

const RunSummarySchema = z.looseObject({
  model: z.string(),
  prompt: z.string(),
  imported: z.boolean(),
  simulated: z.boolean(),
  n: z.number().int().nonnegative(),
  metrics: z.looseObject({
    accuracy: num,
    f1: num,
    mcc: num,
    unparseable: z.number().int(),
    truncated: z.number().int(),
    requestErrors: z.number().int(),
  }),
  energy: z.looseObject({
    perSample: z.looseObject({ gpuKwh: num.optional(), totalKwh: num.optional() }).nullish(),
    tokensPerS: num.optional(),
  }),
});

const DeltaSchema = z.looseObject({
  diff: num,
  ciSample: z.tuple([z.number(), z.number()]).nullable(),
  ciCluster: z.tuple([z.number(), z.number()]).nullable(),
});

const ComparisonSchema = z.looseObject({
  id: z.string(),
  kind: z.string(),
  label: z.string(),
  nCommon: z.number().int(),
  leftOut: z.looseObject({ onlyInA: z.array(z.unknown()), onlyInB: z.array(z.unknown()) }),
  mcnemar: z.looseObject({ b: z.number().int(), c: z.number().int(), pValue: z.number(), pAdjusted: num }),
  accuracy: DeltaSchema,
  f1: DeltaSchema,
  verdict: verdict.optional(),
});

export const DecisionPacketSchema = z.looseObject({
  schemaVersion: z.literal(1),
  study: z.string(),
  phase: z.string(),
  generatedAt: z.string(),
  simulated: z.boolean(),
  runs: z.array(RunSummarySchema),
  comparisons: z.array(ComparisonSchema),
  consistency: z.looseObject({ confounds: z.array(z.string()) }),
  decision: z.looseObject({
    rule: z.string(),
    definition: z.string(),
    perModel: z.array(z.looseObject({ model: z.string(), verdict, why: z.string() })),
    recommendation: z.looseObject({
      action: z.enum(['approve', 'skip', 'none']),
      basis: z.string(),
      text: z.string(),
    }),
  }),
  warnings: z.array(z.string()),
});
export type DecisionPacket = z.infer<typeof DecisionPacketSchema>;

export const PacketOutputSchema = z.object({
  packet: DecisionPacketSchema,
  packetSha256: z.string().regex(/^[0-9a-f]{64}$/),
  jsonPath: z.string(),
  mdPath: z.string(),
  reportPath: z.string(),
});

export const ReportOutputSchema = z.looseObject({
  reportMd: z.string(),
  reportHtml: z.string(),
  figures: z.array(z.string()),
});

/** `results/<study>/gate-decisions.json`. */
export const GateDecisionsFileSchema = z.object({
  decisions: z.array(
    z.object({
      gate: z.string(),
      afterPhase: z.string(),
      decision: z.enum(['approve', 'skip', 'stop']),
      by: z.string(),
      reason: z.string().nullable(),
      at: z.string(),
      packetSha256: z.string().nullable(),
      via: z.enum(['update', 'signal', 'timeout']),
    }),
  ),
});
