"""`python -m analysis packet|report|import`: JSON in (stdin or argv), JSON out (stdout); bad input exits 2."""

from __future__ import annotations

import json
import sys

from . import AnalysisError
from .runs import clean_json

USAGE = """usage: python -m analysis <command>
  packet   decision packet of a phase: JSON request on stdin, JSON result on stdout (docs/analysis.md)
  report   study report: {"resultsDir", "study"} on stdin, {"reportMd", "reportHtml", "figures"} on stdout
  import   import an external run folder (see `python -m analysis import --help`)"""


def _print_json(result: object) -> None:
    sys.stdout.write(json.dumps(clean_json(result), allow_nan=False, ensure_ascii=False) + "\n")


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "packet":
        from .packet import main_packet
        _print_json(main_packet(sys.stdin.read()))
        return 0
    if command == "report":
        from .report import main_report  # the report module is loaded only when asked for
        _print_json(main_report(sys.stdin.read()))
        return 0
    if command == "import":
        from .importer import main as import_main
        return int(import_main(rest))
    print(f"analysis: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "analysis"
    try:
        return run(args)
    except (AnalysisError, ValueError, OSError) as exc:
        # Expected input errors (JSONDecodeError is a ValueError): one line, no traceback.
        message = " ".join(str(exc).split())
        print(f"analysis {command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
