import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

export const StudyKey = defineSearchAttributeKey('Study', SearchAttributeType.KEYWORD);
export const PhaseKey = defineSearchAttributeKey('Phase', SearchAttributeType.KEYWORD);
export const ModelKey = defineSearchAttributeKey('Model', SearchAttributeType.KEYWORD);

/** Study / Phase / Model, for filtering in the Web UI (`Study="rq1" AND Phase="phase2a"`). */
export function studyAttributes(a: { study: string; phase?: string; model?: string }): SearchAttributePair[] {
  const pairs: SearchAttributePair[] = [{ key: StudyKey, value: a.study }];
  if (a.phase) pairs.push({ key: PhaseKey, value: a.phase });
  if (a.model) pairs.push({ key: ModelKey, value: a.model });
  return pairs;
}
