"""Pod-side harness: runs one evaluation (dataset x prompt x served model) against vLLM and measures energy.

Entry point: `python3 -m harness.run --spec <runDir>/spec.json` (contract: docs/architecture.md).
"""

SCHEMA_VERSION = 1
