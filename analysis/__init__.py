"""Analysis of a study's results folder: decision packet (`packet`), report (`report`), run import (`import`).

Reads only the results folder (and the dataset once, for samples.json). The contract is docs/analysis.md.
"""

from __future__ import annotations

SCHEMA_VERSION = 1


class AnalysisError(ValueError):
    """Bad input (missing file, invalid JSON, wrong field): `python -m analysis` prints it and exits 2."""
