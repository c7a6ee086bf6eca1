"""Report figures (matplotlib, Agg): written as SVG and PNG, the SVG bytes the same on every rerun."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a worker; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

# Fixed hash salt (SVG ids), text kept as text (no glyph paths), a fixed font: reruns give the same SVG bytes.
_RC: dict[str, Any] = {
    "svg.hashsalt": "analysis-report",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
}
_SVG_METADATA: dict[str, Any] = {"Date": None}
_PNG_METADATA: dict[str, Any] = {"Software": None}
_COLORS = {"gpu": "#4c72b0", "cpu": "#dd8452", "ram": "#55a868", "f1": "#4c72b0", "accuracy": "#c44e52"}


@dataclass(frozen=True)
class FigureFile:
    name: str
    title: str
    caption: str
    svg: Path
    png: Path


def short_model(repo_id: str) -> str:
    return repo_id.rsplit("/", 1)[-1]


def provenance(run: dict[str, Any]) -> str:
    """simulated / imported / native: every row and point carries it, so no sandbox number passes for a real one."""
    if run.get("simulated"):
        return "simulated"
    if run.get("imported"):
        return "imported"
    return "native"


def run_label(run: dict[str, Any]) -> str:
    tag = provenance(run)
    suffix = "" if tag == "native" else f" ({tag})"
    return f"{short_model(str(run.get('model', '?')))} / {run.get('prompt', '?')}{suffix}"


def title_suffix(runs: list[dict[str, Any]]) -> str:
    tags = {provenance(r) for r in runs}
    parts = [t.upper() for t in ("simulated", "imported") if t in tags]
    return f" [{', '.join(parts)}]" if parts else ""


def per_sample(run: dict[str, Any], key: str) -> float | None:
    energy = run.get("energy") or {}
    value = (energy.get("perSample") or {}).get(key)
    return float(value) if value is not None else None


@contextmanager
def _figure(width: float, height: float, layout: str | None = None) -> Iterator[Figure]:
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(width, height), layout=layout)
        try:
            yield fig
        finally:
            plt.close(fig)


def _save(fig: Figure, out_dir: Path, name: str) -> tuple[Path, Path]:
    svg, png = out_dir / f"{name}.svg", out_dir / f"{name}.png"
    fig.savefig(svg, format="svg", metadata=_SVG_METADATA, bbox_inches="tight")
    fig.savefig(png, format="png", metadata=_PNG_METADATA, dpi=110, bbox_inches="tight")
    return svg, png


def _message(fig: Figure, text: str) -> None:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)


def _energy_axis(runs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """GPU energy when any run measured it; else CodeCarbon's total (the sandbox has no GPU); else nothing."""
    if any(per_sample(r, "gpuKwh") is not None for r in runs):
        return "gpuKwh", "GPU energy per sample (kWh, CodeCarbon, gross)"
    if any(per_sample(r, "totalKwh") is not None for r in runs):
        return "totalKwh", "total CodeCarbon energy per sample (kWh; no GPU energy measured)"
    return None


def quality_vs_energy(phase: str, runs: list[dict[str, Any]], out_dir: Path, name: str) -> FigureFile:
    title = f"{phase}: F1 and accuracy vs energy per sample{title_suffix(runs)}"
    axis = _energy_axis(runs)
    with _figure(9, 4.6 + 0.18 * len(runs), layout="constrained") as fig:
        if axis is None:
            _message(fig, f"{title}\n\nno energy measured: no run has a per-sample energy figure")
            caption = "No energy measured: no run of this phase has a per-sample energy figure."
        else:
            key, xlabel = axis
            plotted = [r for r in runs if per_sample(r, key) is not None]
            left_out = [run_label(r) for r in runs if per_sample(r, key) is None]
            axes = fig.subplots(1, 2)
            colors = plt.get_cmap("tab10")
            for ax, metric in zip(axes, ("f1", "accuracy"), strict=True):
                for index, run in enumerate(plotted):
                    y = (run.get("metrics") or {}).get(metric)
                    if y is None:
                        continue
                    # One colour and number per run (legend below): labels beside points would overlap.
                    ax.scatter([per_sample(run, key)], [y], color=colors(index % 10), s=40,
                               marker="s" if run.get("imported") else "o",
                               label=f"{index + 1}: {run_label(run)}" if metric == "f1" else None)
                    ax.annotate(str(index + 1), (per_sample(run, key), y), textcoords="offset points",
                                xytext=(5, 4), fontsize=8)
                ax.set_title(metric)
                ax.set_xlabel(xlabel, fontsize=8)
                ax.set_ylim(-0.05, 1.05)
                ax.grid(True, alpha=0.3)
                # Plain tick labels: an offset text ("1e-3") would sit on the axis label.
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
                ax.tick_params(axis="x", labelsize=7)
            fig.legend(loc="outside lower center", fontsize=8, frameon=False)
            fig.suptitle(title)
            caption = (f"F1 (left) and accuracy (right) per model and prompt against {xlabel}; squares are "
                       "imported runs.")
            if key == "totalKwh":
                caption += " No run measured GPU energy, so CodeCarbon's total (CPU + RAM, estimates) is plotted."
            if left_out:
                caption += f" Not plotted (no such figure): {', '.join(left_out)}."
        svg, png = _save(fig, out_dir, name)
    return FigureFile(name, title, caption, svg, png)


def _component(run: dict[str, Any], key: str) -> float | None:
    value = (run.get("energy") or {}).get(key)
    return float(value) if value is not None else None


def energy_components(phase: str, runs: list[dict[str, Any]], out_dir: Path, name: str) -> FigureFile:
    title = f"{phase}: energy by component per run{title_suffix(runs)}"
    measured = [r for r in runs if any(_component(r, k) is not None for k in ("gpuKwh", "cpuKwh", "ramKwh"))]
    with _figure(8, 1.2 + 0.45 * max(1, len(measured))) as fig:
        if not measured:
            _message(fig, f"{title}\n\nno energy measured")
            svg, png = _save(fig, out_dir, name)
            return FigureFile(name, title, "No energy measured for any run of this phase.", svg, png)
        ax = fig.add_subplot()
        labels = [run_label(r) for r in measured]
        left = [0.0] * len(measured)
        legend: dict[str, Patch] = {}
        for key, part, estimate_key in (("gpuKwh", "GPU", None), ("cpuKwh", "CPU", "cpuEstimate"),
                                        ("ramKwh", "RAM", "ramEstimate")):
            for row, run in enumerate(measured):
                value = _component(run, key) or 0.0
                estimate = bool(estimate_key and (run.get("energy") or {}).get(estimate_key))
                color = _COLORS[part.lower()]
                ax.barh(row, value, left=left[row], color=color, hatch="//" if estimate else None,
                        edgecolor="white" if estimate else color)
                left[row] += value
                entry = f"{part} (est.)" if estimate else part
                if _component(run, key) is not None:
                        legend.setdefault(entry, Patch(facecolor=color, hatch="//" if estimate else None, label=entry,
                                                   edgecolor="white"))
        ax.set_yticks(range(len(measured)), labels)
        ax.invert_yaxis()
        ax.set_xlabel("energy over the run's inference (kWh, CodeCarbon)")
        ax.legend(handles=list(legend.values()), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
        ax.set_title(title)
        no_gpu = [run_label(r) for r in measured if _component(r, "gpuKwh") is None]
        caption = "GPU, CPU and RAM energy stacked per run (whole inference window); hatched = estimate."
        if no_gpu:
            caption += f" GPU not measured (shown as 0): {', '.join(no_gpu)}."
        svg, png = _save(fig, out_dir, name)
    return FigureFile(name, title, caption, svg, png)


def tokens_per_second(phase: str, runs: list[dict[str, Any]], out_dir: Path, name: str) -> FigureFile:
    title = f"{phase}: output tokens per second per run{title_suffix(runs)}"
    with _figure(8, 1.2 + 0.45 * max(1, len(runs))) as fig:
        ax = fig.add_subplot()
        values = [(run.get("energy") or {}).get("tokensPerS") for run in runs]
        ax.barh(range(len(runs)), [v or 0.0 for v in values], color=_COLORS["gpu"])
        for row, value in enumerate(values):
            if value is None:
                ax.text(0, row, " not measured", va="center", fontsize=7)
        ax.set_yticks(range(len(runs)), [run_label(r) for r in runs])
        ax.invert_yaxis()
        ax.set_xlabel("completion tokens / inference second")
        ax.set_title(title)
        svg, png = _save(fig, out_dir, name)
    return FigureFile(name, title, "Completion tokens per second of inference, one bar per run.", svg, png)


def confusion_matrices(phase: str, runs: list[dict[str, Any]], out_dir: Path, name: str) -> FigureFile:
    title = f"{phase}: confusion matrices{title_suffix(runs)}"
    columns = min(4, max(1, len(runs)))
    rows = (len(runs) + columns - 1) // columns or 1
    with _figure(3.2 * columns, 2.9 * rows + 0.6) as fig:
        for index, run in enumerate(runs):
            c = (run.get("metrics") or {}).get("confusion") or {}
            grid = [[c.get("tp", 0), c.get("fn", 0)], [c.get("fp", 0), c.get("tn", 0)]]
            ax = fig.add_subplot(rows, columns, index + 1)
            top = max(max(r) for r in grid) or 1
            # pcolormesh, not imshow: vector cells, so the SVG embeds no raster image
            ax.pcolormesh([-0.5, 0.5, 1.5], [-0.5, 0.5, 1.5], grid, cmap="Blues", vmin=0, vmax=top)
            ax.set_xlim(-0.5, 1.5)
            ax.set_ylim(1.5, -0.5)
            ax.set_aspect("equal")
            for i in range(2):
                for j in range(2):
                    ax.text(j, i, str(grid[i][j]), ha="center", va="center",
                            color="white" if grid[i][j] > top / 2 else "black")
            ax.set_xticks([0, 1], ["pred. vuln.", "pred. benign"], fontsize=7)
            ax.set_yticks([0, 1], ["vulnerable", "benign"] if index % columns == 0 else ["", ""], fontsize=7)
            ax.set_title(run_label(run).replace(" / ", "\n", 1), fontsize=7)
        if not runs:
            _message(fig, "no runs")
        fig.suptitle(title)
        fig.tight_layout()
        svg, png = _save(fig, out_dir, name)
    caption = ("Rows: dataset label; columns: prediction (unparseable, truncated and failed outputs count as wrong). "
               "One panel per run.")
    return FigureFile(name, title, caption, svg, png)


_PHASE_FIGURES: tuple[tuple[str, Callable[[str, list[dict[str, Any]], Path, str], FigureFile]], ...] = (
    ("quality-vs-energy", quality_vs_energy),
    ("energy-components", energy_components),
    ("tokens-per-second", tokens_per_second),
    ("confusion", confusion_matrices),
)


def phase_figures(phase: str, runs: list[dict[str, Any]], out_dir: Path) -> list[FigureFile]:
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", phase)
    return [draw(phase, runs, out_dir, f"{slug}-{kind}") for kind, draw in _PHASE_FIGURES]


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(path: Path, prefix: str) -> str:
    """SVG markup for an HTML page: no XML prolog, DOCTYPE or RDF metadata (external URIs), ids made unique."""
    text = path.read_text(encoding="utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    # Inline SVG in HTML needs no namespace declarations; dropping them leaves no URI in any attribute.
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = text.replace("xlink:href=", "href=")
    for ident in sorted(set(_ID.findall(text)), key=len, reverse=True):
        text = text.replace(f'id="{ident}"', f'id="{prefix}-{ident}"')
        text = text.replace(f"#{ident})", f"#{prefix}-{ident})").replace(f'"#{ident}"', f'"#{prefix}-{ident}"')
    return text.strip()
