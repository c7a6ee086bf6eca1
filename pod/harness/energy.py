"""Energy measurement: CodeCarbon 2.7.1 windows cross-checked with NVML (traps: reference/pod-side.md section 3)."""

from __future__ import annotations

import csv
import logging
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # pynvml's deprecation notice, printed on import
    import codecarbon
    from codecarbon import OfflineEmissionsTracker

from .spec import Spec

log = logging.getLogger("harness.energy")

CODECARBON_VERSION = "2.7.1"
LOCK_PATH = Path(tempfile.gettempdir()) / ".codecarbon.lock"  # where codecarbon.lock puts it
RAPL_PATHS = (Path("/sys/class/powercap/intel-rapl:0/energy_uj"),
              Path("/sys/class/powercap/intel-rapl/intel-rapl:0/energy_uj"))
KWH_PER_MJ = 1 / 3.6e9  # NVML counts millijoules


class MeasurementError(RuntimeError):
    """The energy record for this run is missing or unusable: the run is invalid."""


def require_codecarbon() -> str:
    if codecarbon.__version__ != CODECARBON_VERSION:
        raise MeasurementError(f"codecarbon {codecarbon.__version__} is installed; the study pins "
                               f"{CODECARBON_VERSION} (pod/requirements.txt)")
    return str(codecarbon.__version__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _other_harness_running(proc_root: Path) -> bool:
    own = os.getpid()
    for entry in proc_root.glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # exited while we looked
        if int(entry.name) != own and b"harness.run" in cmdline:
            return True
    return False


def lock_is_stale(lock_path: Path = LOCK_PATH, proc_root: Path = Path("/proc")) -> bool:
    """Whether the CodeCarbon lock file is left over from a dead process.

    CodeCarbon 2.7.1 creates the file empty, so its owner is unknown. Rule: if the file holds a pid
    (as other tools and our tests write), it is stale when that process is gone; if it holds no pid, it is
    stale when no other `harness.run` process is alive, since on a pod only the harness runs CodeCarbon.
    """
    try:
        content = lock_path.read_text().strip()
    except FileNotFoundError:
        return False
    if content.isdigit():
        return not _pid_alive(int(content))
    return not _other_harness_running(proc_root)


def clear_stale_lock(lock_path: Path = LOCK_PATH) -> None:
    # With allow_multiple_runs=True our trackers skip the lock, but a stale one still silences any
    # tracker started without it (2.7.1 leaves it behind on a crash), so remove it when it is stale.
    if not lock_path.exists():
        return
    if lock_is_stale(lock_path):
        lock_path.unlink(missing_ok=True)
        log.warning("removed stale CodeCarbon lock %s", lock_path)
    else:
        log.warning("CodeCarbon lock %s belongs to a live process; leaving it", lock_path)


def rapl_readable() -> bool:
    for path in RAPL_PATHS:
        try:
            int(path.read_text().strip())
            return True
        except (OSError, ValueError):
            continue
    return False


def read_nvml_mj(indices: tuple[int, ...] | None = None) -> list[int] | None:
    """Total-energy counter (mJ since driver load) of the given GPUs (None: every GPU), or None without a usable GPU.

    Indices are NVML's (PCI bus order, as nvidia-smi numbers them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml
        pynvml.nvmlInit()
    except Exception:  # no driver, no library, no GPU: all mean "no NVML reading"
        return None
    try:
        wanted = indices if indices is not None else range(pynvml.nvmlDeviceGetCount())
        readings = [pynvml.nvmlDeviceGetTotalEnergyConsumption(pynvml.nvmlDeviceGetHandleByIndex(i))
                    for i in wanted]
        return [int(r) for r in readings] or None
    except Exception as exc:
        log.warning("NVML energy counter unreadable: %s", exc)
        return None
    finally:
        pynvml.nvmlShutdown()


def nvml_kwh(start: list[int] | None, end: list[int] | None) -> float | None:
    if start is None or end is None or len(start) != len(end):
        return None
    return sum(e - s for s, e in zip(start, end, strict=True)) * KWH_PER_MJ


@dataclass(frozen=True)
class WindowEnergy:
    """One measured window (kWh, s). CodeCarbon's *_power columns hold only the last interval, so no powers here."""

    codecarbon_run_id: str
    duration_s: float
    cpu_kwh: float
    gpu_kwh: float
    ram_kwh: float
    total_kwh: float
    nvml_kwh: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_csv_row(csv_path: Path, run_id: str) -> dict[str, str] | None:
    """The tracker's row, or None when there is none or the file cannot be read (either way: no measurement)."""
    try:
        with csv_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("run_id") == run_id:
                    return row
    except OSError as exc:
        log.error("cannot read %s: %s", csv_path, exc)
    return None


class EnergyWindow:
    """A CodeCarbon OfflineEmissionsTracker run bracketed by NVML reads; the tracker always stops on exit."""

    def __init__(self, spec: Spec, project_name: str, save_to_file: bool) -> None:
        self.spec = spec
        self.csv_path = spec.output_dir / "emissions.csv"
        self.tracker = OfflineEmissionsTracker(
            country_iso_code=spec.codecarbon.country_iso_code,
            allow_multiple_runs=True,
            measure_power_secs=spec.codecarbon.measure_power_secs,
            tracking_mode=spec.codecarbon.tracking_mode,
            output_dir=str(spec.output_dir),
            output_file=self.csv_path.name,
            save_to_file=save_to_file,
            project_name=project_name,
            log_level="warning",
            # Only the run's GPUs: on a shared server the others carry other people's jobs.
            gpu_ids=list(spec.gpu_indices) if spec.gpu_indices is not None else None,
        )
        self.nvml_start: list[int] | None = None
        self.nvml_end: list[int] | None = None

    @property
    def run_id(self) -> str:
        return str(getattr(self.tracker, "run_id", ""))

    def __enter__(self) -> EnergyWindow:
        self.nvml_start = read_nvml_mj(self.spec.gpu_indices)
        self.tracker.start()
        # start() swallows its exceptions (@suppress); a tracker that did not start has no start time.
        if getattr(self.tracker, "_start_time", None) is None:
            raise MeasurementError("CodeCarbon tracker failed to start (see codecarbon errors in harness.log)")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.tracker.stop()
        self.nvml_end = read_nvml_mj(self.spec.gpu_indices)

    def from_tracker(self) -> WindowEnergy:
        """Energy from the tracker's in-memory result (used for the baseline, which writes no CSV row)."""
        data = getattr(self.tracker, "final_emissions_data", None)
        if data is None:
            raise MeasurementError("CodeCarbon tracker.stop() produced no data")
        return WindowEnergy(self.run_id, float(data.duration), float(data.cpu_energy), float(data.gpu_energy),
                            float(data.ram_energy), float(data.energy_consumed),
                            nvml_kwh(self.nvml_start, self.nvml_end))

    def from_csv(self) -> WindowEnergy:
        """Energy from this tracker's emissions.csv row; a missing row makes the measurement invalid."""
        row = read_csv_row(self.csv_path, self.run_id)
        if row is None:
            raise MeasurementError(f"emissions.csv has no row for CodeCarbon run {self.run_id or '?'}: the energy "
                                   "measurement was not recorded (stale lock or tracker failure), run invalid")

        def num(key: str) -> float:
            return float(row[key]) if row.get(key) not in (None, "") else 0.0

        return WindowEnergy(self.run_id, num("duration"), num("cpu_energy"), num("gpu_energy"), num("ram_energy"),
                            num("energy_consumed"), nvml_kwh(self.nvml_start, self.nvml_end))
