"""The data layer: loopml's ingest and validation, side by side with Great Expectations,
pandera and a bare numpy pass of the same checks, on this machine.

    bash benchmarks/setup.sh
    benchmarks/.venv/bin/python benchmarks/data.py            # full sizes (~12-18 min)
    benchmarks/.venv/bin/python benchmarks/data.py --quick    # smoke run (<1 min)

One seeded dataset of 10 million rows x 20 columns (ints, floats, categories, text, a
timestamp, a bool) is written once per run into a temporary folder, as Parquet and as
CSV, with one contract of 39 checks (types, not-null, min/max, categories, a regex, a
unique id). Then:

1. ingest     ``ws.data.ingest(file, contract=..., on_invalid="fail")`` from Parquet and
              from CSV, each repeat in a fresh workspace in its own process: rows per
              second, and the peak RSS of that process (``VmHWM`` in /proc/self/status).
              The peak-memory target is measured on a CSV of at least 3 GB (a bigger
              file of the same kind is generated for it when the 10M-row CSV is smaller).
2. validate   the same 39 checks on the same rows already in memory, each tool in its
              own process, repeats alternating the order of the tools: loopml's
              ``Validator`` (on an Arrow table; also on 131,072-row batches and on a
              pandas frame), Great Expectations 1.x (its own venv, pandas < 3; ephemeral
              context, pandas datasource, a suite of 39 expectations), pandera (the
              schema ``contract_to_pandera`` builds, and the same checks without dtype
              coercion) and numpy (vectorized masks written here). Seconds, rows per
              second and the peak RSS increase during the checks.

Before timing anything, every tool validates a small dataset with known injected
failures and must count them exactly (so all of them do check what the contract says).
Progress goes to stderr; one JSON line with every figure goes to stdout.
"""

from __future__ import annotations

import os

# No usage reporting from anything imported below, nor from the child processes.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["GX_ANALYTICS_ENABLED"] = "false"

import argparse
import datetime as dt
import gc
import importlib.metadata
import json
import math
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from _common import mb, proc_status, release_memory, reset_peak, say, summary, without_network

HERE = Path(__file__).resolve().parent
GX_PYTHON = HERE / ".venv-gx" / "bin" / "python"
GX_SCRIPT = HERE / "_gx_checks.py"
SEED = 20261123
GIB = 1 << 30
BATCH_ROWS = 131_072  # loopml's own batch size when it ingests

TARGETS = {
    "ingest_parquet_rows_per_s_min": 1_000_000,
    "ingest_big_csv_peak_rss_max_bytes": GIB,
    "big_csv_min_bytes": 3_000_000_000,
    "gx_over_loopml_min": 10.0,
    "loopml_over_numpy_max": 3.0,
}

# -- the data and its contract -------------------------------------------------------

PLANS = ["basic", "pro", "team", "enterprise"]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "SE", "NO", "DK", "FI", "PL",
             "PT", "IE", "AT", "CH", "CZ", "CA", "MX", "BR", "AR", "JP", "KR", "AU"]  # fmt: skip
CHANNELS = ["web", "app", "store", "partner", "phone"]
STATUSES = ["active", "paused", "churned"]
SKU_REGEX = "[A-Z]{3}-[0-9]{5}"
CREATED_MIN = "2023-01-01T00:00:00"
_FIRST = ["Ana", "Ben", "Chloe", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Kemal", "Lena", "Marta", "Nils", "Olga", "Pedro", "Qiu", "Rosa", "Sven",
          "Tariq"]  # fmt: skip
_LAST = ["Smith", "Garcia", "Muller", "Rossi", "Dubois", "Kowalski", "Silva", "Tanaka",
         "Jensen", "Novak", "Okafor", "Haddad", "Larsen", "Moreau", "Petrov", "Ueda"]  # fmt: skip

CONTRACT: dict[str, Any] = {
    "columns": {
        "id": {"type": "int", "nullable": False, "unique": True, "min": 1},
        "customer_id": {"type": "int", "min": 1},
        "age": {"type": "int", "min": 18, "max": 120},
        "n_items": {"type": "int", "max": 500},
        "visits": {"type": "int"},
        "region": {"type": "int"},
        "amount": {"type": "float", "nullable": False, "min": 0},
        "score": {"type": "float", "min": 0, "max": 1},
        "discount": {"type": "float", "max": 0.9},
        "lat": {"type": "float"},
        "lon": {"type": "float"},
        "temperature": {"type": "float"},
        "plan": {"type": "category", "nullable": False, "categories": PLANS},
        "country": {"type": "category", "categories": COUNTRIES},
        "channel": {"type": "category", "categories": CHANNELS},
        "status": {"type": "string", "categories": STATUSES},
        "sku": {"type": "string", "regex": SKU_REGEX},
        "name": {"type": "string"},
        "created_at": {"type": "datetime", "min": CREATED_MIN},
        "active": {"type": "bool"},
    }
}


def contract_checks(contract: dict[str, Any]) -> list[str]:
    """The row checks the contract asks for, as "check:column", in loopml's order."""
    found = []
    for name, spec in contract["columns"].items():
        found.append(f"type:{name}")
        if spec.get("nullable") is False:
            found.append(f"not_null:{name}")
        for field_ in ("min", "max", "categories", "regex"):
            if field_ in spec:
                found.append(f"{field_}:{name}")
        if spec.get("unique"):
            found.append(f"unique:{name}")
    return found


def _dictionary(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))


def make_chunk(ids: np.ndarray, seed: int) -> pa.Table:
    """Rows that pass the contract, for the given ids (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    discount = np.round(rng.random(n) * 0.5, 3)
    sku = np.empty((n, 9), dtype=np.uint8)
    sku[:, :3] = rng.integers(65, 91, (n, 3), dtype=np.uint8)
    sku[:, 3] = ord("-")
    sku[:, 4:] = rng.integers(48, 58, (n, 5), dtype=np.uint8)
    names = pa.array([f"{first} {last}" for first in _FIRST for last in _LAST])
    start = np.datetime64("2023-01-01T00:00:00", "us").astype(np.int64)
    span = 2 * 365 * 86_400 * 1_000_000
    columns = {
        "id": pa.array(ids.astype(np.int64)),
        "customer_id": pa.array(rng.integers(1, 2_000_001, n)),
        "age": pa.array(rng.integers(18, 91, n)),
        "n_items": pa.array(rng.integers(0, 51, n)),
        "visits": pa.array(rng.poisson(3.0, n).astype(np.int64)),
        "region": pa.array(rng.integers(1, 13, n)),
        "amount": pa.array(np.round(rng.gamma(2.0, 60.0, n), 2)),
        "score": pa.array(rng.random(n)),
        "discount": pa.array(discount, mask=rng.random(n) < 0.05),
        "lat": pa.array(np.round(rng.uniform(-90, 90, n), 5)),
        "lon": pa.array(np.round(rng.uniform(-180, 180, n), 5)),
        "temperature": pa.array(np.round(rng.normal(15, 10, n), 1)),
        "plan": _dictionary(rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05]), PLANS),
        "country": _dictionary(rng.integers(0, len(COUNTRIES), n), COUNTRIES),
        "channel": _dictionary(rng.integers(0, len(CHANNELS), n), CHANNELS),
        "status": pa.array(STATUSES).take(pa.array(rng.integers(0, 3, n))),
        "sku": pa.array(sku.view("S9").ravel()).cast(pa.string()),
        "name": names.take(pa.array(rng.integers(0, len(names), n))),
        "created_at": pa.array(start + rng.integers(0, span, n), type=pa.timestamp("us")),
        "active": pa.array(rng.random(n) < 0.8),
    }
    return pa.table(columns)


def write_dataset(
    folder: Path, rows: int, chunk_rows: int, *, parquet: bool, csv_name: str | None, seed: int
) -> dict[str, Any]:
    """Writes ``rows`` rows (ids a seeded permutation of 1..rows) as Parquet and/or CSV."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    ids = np.random.default_rng(seed).permutation(rows) + 1
    parquet_writer = csv_writer = None
    written: dict[str, Any] = {"rows": rows}
    try:
        for index, start in enumerate(range(0, rows, chunk_rows)):
            table = make_chunk(ids[start : start + chunk_rows], seed + 1 + index)
            if parquet:
                if parquet_writer is None:
                    parquet_writer = pq.ParquetWriter(folder / "data.parquet", table.schema)
                parquet_writer.write_table(table)
            if csv_name is not None:
                plain = pa.table(
                    {
                        name: column.cast(pa.string())
                        if pa.types.is_dictionary(column.type)
                        else column
                        for name, column in zip(table.column_names, table.columns, strict=True)
                    }
                )
                if csv_writer is None:
                    csv_writer = pacsv.CSVWriter(folder / csv_name, plain.schema)
                csv_writer.write_table(plain)
    finally:
        if parquet_writer is not None:
            parquet_writer.close()
        if csv_writer is not None:
            csv_writer.close()
    if parquet:
        written["parquet_bytes"] = (folder / "data.parquet").stat().st_size
    if csv_name is not None:
        written["csv_bytes"] = (folder / csv_name).stat().st_size
    return written


# Known failures injected into a small copy: every tool must count exactly these.
def make_sanity(folder: Path, rows: int = 20_000) -> dict[str, int]:
    import pyarrow.parquet as pq

    table = make_chunk(np.random.default_rng(SEED).permutation(rows) + 1, SEED + 999)
    frame = {name: table.column(name).combine_chunks() for name in table.column_names}
    expected = {check: 0 for check in contract_checks(CONTRACT)}
    rng = np.random.default_rng(7)
    free = list(rng.permutation(rows)[:200])

    def rows_for(count: int) -> list[int]:
        return [int(free.pop()) for _ in range(count)]

    def put(name: str, where: list[int], value: Any) -> None:
        column = frame[name]
        if pa.types.is_dictionary(column.type):
            values = column.dictionary.to_pylist()
            if value is not None and value not in values:
                values.append(value)
            codes = column.indices.fill_null(0).to_numpy().astype(np.int32)
            mask = column.is_null().to_numpy(zero_copy_only=False).copy()
            for row in where:
                if value is None:
                    mask[row] = True
                else:
                    codes[row] = values.index(value)
                    mask[row] = False
            frame[name] = pa.DictionaryArray.from_arrays(
                pa.array(codes, mask=mask), pa.array(values)
            )
            return
        python = column.to_pylist()
        for row in where:
            python[row] = value
        frame[name] = pa.array(python, type=column.type)

    def inject(check: str, name: str, count: int, value: Any) -> None:
        put(name, rows_for(count), value)
        expected[f"{check}:{name}"] += count

    ids = frame["id"].to_pylist()
    for first, second in [rows_for(2) for _ in range(3)]:  # three repeated ids
        ids[second] = ids[first]
    frame["id"] = pa.array(ids, pa.int64())
    expected["unique:id"] = 3  # repeats after the first occurrence
    inject("min", "id", 1, 0)
    inject("min", "customer_id", 2, 0)
    inject("min", "age", 2, 5)
    inject("max", "age", 3, 150)
    inject("max", "n_items", 2, 1000)
    inject("not_null", "amount", 2, None)
    inject("min", "amount", 2, -5.0)
    inject("min", "score", 1, -0.1)
    inject("max", "score", 2, 1.5)
    inject("max", "discount", 2, 0.95)
    inject("not_null", "plan", 2, None)
    inject("categories", "plan", 3, "gold")
    inject("categories", "country", 2, "XX")
    inject("categories", "channel", 1, "fax")
    inject("categories", "status", 2, "deleted")
    inject("regex", "sku", 3, "abc-12345")
    inject("min", "created_at", 2, dt.datetime(2019, 6, 1))
    pq.write_table(pa.table(frame), folder / "sanity.parquet")
    return expected


# -- measuring inside a child process ---------------------------------------------------


def _timed(run: Any) -> dict[str, Any]:
    """Runs ``run()`` with the cyclic GC off; seconds and the peak RSS increase."""
    baseline = release_memory()
    reset_peak()
    gc.disable()
    try:
        start = time.perf_counter()
        counts = run()
        seconds = time.perf_counter() - start
    finally:
        gc.enable()
    return {
        "seconds": seconds,
        "rss_before": baseline,
        "peak_rss_increase": max(0, proc_status("VmHWM") - baseline),
        "counts": counts,
    }


def child_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    import loopml

    home = Path(spec["home"])
    ws = loopml.Workspace.open(home)
    try:
        rss_before = proc_status("VmRSS")
        cpu_before = os.times()
        start = time.perf_counter()
        version = ws.data.ingest(
            spec["file"], name="bench", contract=spec["contract"], on_invalid="fail"
        )
        seconds = time.perf_counter() - start
        cpu = os.times()
        report = version.report
        return {
            "seconds": seconds,
            # CPU time of all the process's threads during the ingest: with the machine
            # shared, wall time / CPU time shows how much of the two cores it got.
            "cpu_s": (cpu.user - cpu_before.user) + (cpu.system - cpu_before.system),
            "rows": version.rows,
            "columns": version.columns,
            "passed": bool(report is not None and report.passed),
            "checks": len(report.checks) if report is not None else 0,
            "rss_before": rss_before,
            "peak_rss": proc_status("VmHWM"),
        }
    finally:
        ws.close()


def _loopml_counts(report: Any) -> dict[str, int]:
    return {f"{c.check}:{c.column}": c.failures for c in report.checks}


def child_loopml(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from loopml.data.contract import load_contract
    from loopml.data.validation import Validator

    contract = load_contract(spec["contract"])
    table = pq.read_table(spec["file"]).combine_chunks()  # contiguous, like the frames
    variant = spec["variant"]
    data: Any = table
    if variant == "pandas":
        data = table.to_pandas()
        del table
    elif variant == "batches":
        data = table.to_batches(max_chunksize=BATCH_ROWS)
    rss_loaded = release_memory()

    def run() -> dict[str, int]:
        validator = Validator(contract)
        if variant == "batches":
            for batch in data:
                validator.check(batch)
        else:
            validator.check(data)
        return _loopml_counts(validator.finish())

    return {"rss_loaded": rss_loaded, **_timed(run)}


_PANDERA_CHECKS = {
    "greater_than_or_equal_to": "min",
    "less_than_or_equal_to": "max",
    "isin": "categories",
    "str_matches": "regex",
    "not_nullable": "not_null",
    "field_uniqueness": "unique",
    "dtype": "type",
    "coerce_dtype": "type",
}


def _pandera_counts(error: Any, contract: dict[str, Any]) -> dict[str, int]:
    counts = {check: 0 for check in contract_checks(contract)}
    if error is None:
        return counts
    cases = error.failure_cases
    for (column, check), group in cases.groupby(["column", "check"], dropna=False):
        kind = _PANDERA_CHECKS.get(str(check).split("(")[0], str(check))
        key = f"{kind}:{column}"
        counts[key] = counts.get(key, 0) + len(group)
    return counts


def child_pandera(spec: dict[str, Any]) -> dict[str, Any]:
    import pandera.errors
    import pandera.pandas as pandera
    import pyarrow.parquet as pq

    from loopml.data.contract import load_contract
    from loopml.data.validation import contract_to_pandera

    contract = load_contract(spec["contract"])
    frame = pq.read_table(spec["file"]).to_pandas()
    schema = contract_to_pandera(contract)
    if spec["variant"] == "nocoerce":
        # The same checks, each column declared with the dtype the frame already has.
        schema = pandera.DataFrameSchema(
            {
                name: pandera.Column(
                    frame[name].dtype,
                    checks=column.checks,
                    nullable=column.nullable,
                    unique=column.unique,
                    report_duplicates="exclude_first",
                    coerce=False,
                )
                for name, column in schema.columns.items()
            },
            strict=True,
        )
    rss_loaded = release_memory()

    def run() -> dict[str, int]:
        try:
            schema.validate(frame, lazy=True)
        except pandera.errors.SchemaErrors as error:
            return _pandera_counts(error, spec["contract"])
        return _pandera_counts(None, spec["contract"])

    return {"rss_loaded": rss_loaded, **_timed(run)}


# The bare numpy pass: the data as plain numpy arrays, each check one vectorized mask.
def _numpy_columns(table: pa.Table) -> dict[str, tuple[np.ndarray, Any, np.ndarray | None]]:
    """name -> (values, dictionary for categories, validity or None when no nulls)."""
    columns: dict[str, tuple[np.ndarray, Any, np.ndarray | None]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        array = column.combine_chunks()
        valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
        dictionary = None
        if pa.types.is_dictionary(array.type):
            dictionary = array.dictionary.to_pylist()
            values = array.indices.fill_null(-1).to_numpy().astype(np.int32)
        elif pa.types.is_string(array.type):
            values = np.array(array.fill_null("").to_pylist(), dtype="S")
        elif pa.types.is_floating(array.type):
            values = array.to_numpy(zero_copy_only=False)  # nulls become NaN
        elif pa.types.is_timestamp(array.type):
            values = array.to_numpy(zero_copy_only=False)  # nulls become NaT
        else:
            filled = array.fill_null(pa.scalar(0).cast(array.type)) if array.null_count else array
            values = filled.to_numpy(zero_copy_only=False)
        columns[name] = (values, dictionary, valid)
    return columns


def _byte_classes(pattern: str) -> list[tuple[int, int]]:
    """A fixed-width pattern of literals and [..]{n} classes as one byte range per
    position (all this benchmark's regex needs; numpy has no regex engine)."""
    ranges: list[tuple[int, int]] = []
    for token, low, high, literal, count in re.findall(
        r"(\[(.)-(.)\]|(\\?.))(?:\{(\d+)\})?", pattern
    ):
        del token
        span = (ord(low), ord(high)) if low else (ord(literal[-1]),) * 2
        ranges += [span] * int(count or 1)
    return ranges


NUMPY_DTYPES = {
    "int": lambda v: v.dtype == np.int64,
    "float": lambda v: v.dtype == np.float64,
    "category": lambda v: v.dtype == np.int32,
    "string": lambda v: v.dtype.kind == "S",
    "datetime": lambda v: v.dtype == np.dtype("datetime64[us]"),
    "bool": lambda v: v.dtype == np.bool_,
}


def numpy_checks(
    columns: dict[str, tuple[np.ndarray, Any, np.ndarray | None]], contract: dict[str, Any]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, spec in contract["columns"].items():
        values, dictionary, valid = columns[name]
        kind = spec["type"]
        rows = len(values)
        counts[f"type:{name}"] = 0 if NUMPY_DTYPES[kind](values) else rows
        if spec.get("nullable") is False:
            if kind == "float":
                missing = np.count_nonzero(np.isnan(values))
            elif kind == "category":
                missing = np.count_nonzero(values < 0)
            else:
                missing = rows - np.count_nonzero(valid) if valid is not None else 0
            counts[f"not_null:{name}"] = int(missing)
        for bound, compare in (("min", np.less), ("max", np.greater)):
            if bound not in spec:
                continue
            limit: Any = spec[bound]
            if kind == "datetime":
                limit = np.datetime64(limit, "us")
            failing = compare(values, limit)  # NaN and NaT compare false: never fail
            if valid is not None and kind != "float":
                failing &= valid
            counts[f"{bound}:{name}"] = int(np.count_nonzero(failing))
        if "categories" in spec:
            allowed = set(spec["categories"])
            if kind == "category":
                table = np.array([value in allowed for value in dictionary] + [True])
                failing = ~table[values]  # code -1 (missing) reads the final True
            else:
                ok = np.zeros(rows, dtype=np.bool_)
                for value in spec["categories"]:
                    ok |= values == value.encode()
                failing = ~ok if valid is None else ~ok & valid
            counts[f"categories:{name}"] = int(np.count_nonzero(failing))
        if "regex" in spec:
            ranges = _byte_classes(spec["regex"])
            width = values.dtype.itemsize
            if width < len(ranges):
                failing = np.ones(rows, dtype=np.bool_)
            else:
                grid = values.view(np.uint8).reshape(rows, width)
                ok = np.ones(rows, dtype=np.bool_)
                for position, (low, high) in enumerate(ranges):
                    byte = grid[:, position]
                    ok &= (byte >= low) & (byte <= high)
                if width > len(ranges):
                    ok &= grid[:, len(ranges)] == 0  # nothing after the match
                failing = ~ok if valid is None else ~ok & valid
            counts[f"regex:{name}"] = int(np.count_nonzero(failing))
        if spec.get("unique"):
            present = values if valid is None else values[valid]
            ordered = np.sort(present)
            counts[f"unique:{name}"] = int(np.count_nonzero(ordered[1:] == ordered[:-1]))
    return counts


def child_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    columns = _numpy_columns(pq.read_table(spec["file"]))
    rss_loaded = release_memory()
    return {"rss_loaded": rss_loaded, **_timed(lambda: numpy_checks(columns, spec["contract"]))}


CHILDREN = {
    "ingest": child_ingest,
    "loopml": child_loopml,
    "pandera": child_pandera,
    "numpy": child_numpy,
}


def child_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    result = CHILDREN[spec["kind"]](spec)
    print(json.dumps(result), flush=True)
    return 0


# -- the parent ------------------------------------------------------------------------


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark check failed: {message}")


@dataclass
class Sizes:
    rows: int = 10_000_000
    chunk_rows: int = 1_000_000
    ingest_repeats: int = 3
    csv_repeats: int = 3
    validate_repeats: int = 3
    big_csv_bytes: int = 3_200_000_000  # generated when the rows' CSV is smaller than 3 GB


QUICK = Sizes(
    rows=200_000,
    chunk_rows=100_000,
    ingest_repeats=2,
    csv_repeats=1,
    validate_repeats=1,
    big_csv_bytes=60_000_000,
)

# Tools of part 2: name -> (child kind, variant, interpreter or None for this one).
TOOLS: dict[str, tuple[str, str]] = {
    "loopml": ("loopml", "table"),
    "loopml_batches": ("loopml", "batches"),
    "loopml_pandas": ("loopml", "pandas"),
    "gx": ("gx", ""),
    "pandera": ("pandera", "coerce"),
    "pandera_nocoerce": ("pandera", "nocoerce"),
    "numpy": ("numpy", ""),
}


class Runner:
    """Starts child processes, in a network namespace of their own when possible."""

    def __init__(self, isolate: bool) -> None:
        self.prefix = without_network(isolate)
        self.isolated = bool(self.prefix)

    def run(self, command: list[str], cwd: Path, what: str) -> dict[str, Any]:
        started = time.perf_counter()
        done = subprocess.run(
            [*self.prefix, *command], cwd=cwd, capture_output=True, text=True, env=os.environ
        )
        wall = time.perf_counter() - started
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"benchmark check failed: {what} exited with {done.returncode}")
        result: dict[str, Any] = json.loads(lines[-1])
        result["process_wall_s"] = wall
        return result

    def child(self, spec: dict[str, Any], cwd: Path) -> dict[str, Any]:
        command = [sys.executable, str(Path(__file__).resolve()), "_child", json.dumps(spec)]
        return self.run(command, cwd, f"{spec['kind']} child")

    def tool(self, name: str, file: Path, contract_json: Path, cwd: Path) -> dict[str, Any]:
        kind, variant = TOOLS[name]
        if kind == "gx":
            command = [str(GX_PYTHON), str(GX_SCRIPT), "--data", str(file),
                       "--contract", str(contract_json)]  # fmt: skip
            return self.run(command, cwd, "great expectations")
        spec = {"kind": kind, "variant": variant, "file": str(file), "contract": CONTRACT}
        return self.child(spec, cwd)


def ingest_part(
    runner: Runner, root: Path, files: dict[str, Path], sizes: Sizes, data: dict[str, Any]
) -> dict[str, Any]:
    contract_file = root / "contract.yaml"
    plan = [("parquet", sizes.ingest_repeats), ("csv", sizes.csv_repeats)]
    if "big_csv" in files:
        plan.append(("big_csv", 1))
    samples: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt, _ in plan}
    expected_rows = {"parquet": sizes.rows, "csv": sizes.rows, "big_csv": data.get("big_rows")}
    for fmt, repeats in plan:
        for repeat in range(repeats):
            home = root / f"ws-{fmt}-{repeat}"
            spec = {"kind": "ingest", "home": str(home), "file": str(files[fmt]),
                    "contract": str(contract_file)}  # fmt: skip
            load = os.getloadavg()[0]
            result = runner.child(spec, root)
            shutil.rmtree(home, ignore_errors=True)
            check(result["passed"], f"{fmt} ingest did not pass its contract")
            check(result["checks"] == 39, f"{fmt} ingest ran {result['checks']} checks, not 39")
            check(result["rows"] == expected_rows[fmt], f"{fmt} ingest stored {result['rows']}")
            result["rows_per_s"] = result["rows"] / result["seconds"]
            result["load_avg_1m"] = load
            result["load_avg_1m_after"] = os.getloadavg()[0]
            samples[fmt].append(result)
            say(
                f"ingest {fmt:8s} {repeat + 1}/{repeats}: {result['rows']:,} rows in "
                f"{result['seconds']:.1f} s = {result['rows_per_s']:,.0f} rows/s, "
                f"CPU {result['cpu_s']:.1f} s, peak RSS {mb(result['peak_rss']):,.0f} MiB "
                f"(load {load:.1f} -> {result['load_avg_1m_after']:.1f})"
            )
    section: dict[str, Any] = {}
    for fmt, runs in samples.items():
        section[fmt] = {
            "file_bytes": files[fmt].stat().st_size,
            "rows": runs[0]["rows"],
            "seconds": summary([r["seconds"] for r in runs]),
            "rows_per_s": summary([r["rows_per_s"] for r in runs]),
            "peak_rss_bytes": summary([r["peak_rss"] for r in runs]),
            "rss_before_bytes": summary([r["rss_before"] for r in runs]),
            "cpu_s": summary([r["cpu_s"] for r in runs]),
            "load_avg_1m": [r["load_avg_1m"] for r in runs],
            "load_avg_1m_after": [r["load_avg_1m_after"] for r in runs],
        }
    return section


def sanity_part(
    runner: Runner, tools: list[str], root: Path, contract_json: Path
) -> dict[str, Any]:
    """Every tool counts the injected failures of a small file exactly."""
    expected = make_sanity(root)
    found: dict[str, Any] = {}
    for name in tools:
        counts = runner.tool(name, root / "sanity.parquet", contract_json, root)["counts"]
        want = dict(expected)
        if name == "gx":  # GX marks every member of a repeated group, the first included
            want["unique:id"] = 2 * expected["unique:id"]
        wrong = {k: (counts.get(k), v) for k, v in want.items() if counts.get(k) != v}
        extra = {k: v for k, v in counts.items() if k not in want and v}
        check(not wrong and not extra, f"{name} miscounted injected failures: {wrong} {extra}")
        found[name] = sum(counts.get(k, 0) for k in want)
        say(f"sanity: {name} found every injected failure ({found[name]} failing values)")
    return {"checks": len(expected), "injected": sum(expected.values()), "found": found}


def validate_part(
    runner: Runner, tools: list[str], root: Path, file: Path, sizes: Sizes, contract_json: Path
) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in tools}
    zero = dict.fromkeys(contract_checks(CONTRACT), 0)
    for repeat in range(sizes.validate_repeats):
        order = tools if repeat % 2 == 0 else list(reversed(tools))
        for name in order:
            load = os.getloadavg()[0]
            result = runner.tool(name, file, contract_json, root)
            failing = {k: v for k, v in result["counts"].items() if v}
            check(not failing, f"{name} found failures in valid data: {failing}")
            missing = set(zero) - set(result["counts"])
            check(not missing, f"{name} did not report checks {sorted(missing)}")
            result["rows_per_s"] = sizes.rows / result["seconds"]
            result["load_avg_1m"] = load
            samples[name].append(result)
            say(
                f"validate {repeat + 1}/{sizes.validate_repeats} {name:16s} "
                f"{result['seconds']:8.2f} s {result['rows_per_s']:>14,.0f} rows/s, "
                f"peak RSS +{mb(result['peak_rss_increase']):,.0f} MiB "
                f"(data {mb(result['rss_loaded']):,.0f} MiB, load {load:.1f})"
            )
    section: dict[str, Any] = {"rows": sizes.rows, "checks": len(zero)}
    for name, runs in samples.items():
        section[name] = {
            "seconds": summary([r["seconds"] for r in runs]),
            "rows_per_s": summary([r["rows_per_s"] for r in runs]),
            "peak_rss_increase_bytes": summary([r["peak_rss_increase"] for r in runs]),
            "rss_loaded_bytes": summary([r["rss_loaded"] for r in runs]),
            "process_wall_s": summary([r["process_wall_s"] for r in runs]),
            "load_avg_1m": [r["load_avg_1m"] for r in runs],
        }
        for key in ("versions", "result_format", "setup_s"):
            if key in runs[0]:
                section[name][key] = runs[0][key]
    if "loopml" in samples:
        base = section["loopml"]["seconds"]["median"]
        section["ratios_to_loopml"] = {
            name: section[name]["seconds"]["median"] / base for name in samples if name != "loopml"
        }
    return section


def targets(results: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    met: dict[str, Any] = {}
    ingest = results.get("ingest", {})
    if "parquet" in ingest:
        got = ingest["parquet"]["rows_per_s"]["median"]
        need = TARGETS["ingest_parquet_rows_per_s_min"]
        met["ingest_parquet_rows_per_s"] = {
            "need": f">= {need:,}", "got": round(got), "met": got >= need,
            "sized_as_target": sizes.rows >= 10_000_000,
        }  # fmt: skip
    big = ingest.get("big_csv") or ingest.get("csv")
    if big is not None:
        got = big["peak_rss_bytes"]["max"]
        need = TARGETS["ingest_big_csv_peak_rss_max_bytes"]
        met["ingest_big_csv_peak_rss"] = {
            "need": "< 1 GiB", "got_mb": mb(got), "met": got < need,
            "csv_bytes": big["file_bytes"],
            "sized_as_target": big["file_bytes"] >= TARGETS["big_csv_min_bytes"],
        }  # fmt: skip
    ratios = results.get("validate", {}).get("ratios_to_loopml", {})
    if "gx" in ratios:
        got = ratios["gx"]
        need = TARGETS["gx_over_loopml_min"]
        met["validate_vs_gx"] = {"need": f">= {need:g}x faster", "got": round(got, 1),
                                 "met": got >= need}  # fmt: skip
    if "numpy" in ratios:
        got = 1 / ratios["numpy"]
        need = TARGETS["loopml_over_numpy_max"]
        met["validate_vs_numpy"] = {"need": f"<= {need:g}x numpy's time", "got": round(got, 2),
                                    "met": got <= need}  # fmt: skip
    met["all_met"] = all(item["met"] for item in met.values() if isinstance(item, dict))
    return met


def versions(gx_versions: dict[str, str] | None) -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for name in ("loopml", "pyarrow", "pandas", "numpy", "duckdb", "pandera"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    if gx_versions:
        found["gx_venv"] = gx_versions
    return found


def source_state() -> dict[str, Any]:
    """The checkout's commit, and whether loopml's sources differ from it (read-only git)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never rewrite the checkout's index

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(HERE.parent), "--no-optional-locks", *args],
            capture_output=True, text=True, check=True, env=env, timeout=30,
        ).stdout.strip()  # fmt: skip

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "src_modified": bool(git("status", "--porcelain", "--untracked-files=no", "--", "src")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=["ingest", "validate"], help="run one part")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"validation tools, comma-separated (default: {','.join(TOOLS)})",
                        )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--no-netns", action="store_true",
                        help="do not start the child processes without network")  # fmt: skip
    parser.add_argument("--tmp", type=Path, help="parent folder of the temporary folder")
    for field_, default in asdict(Sizes()).items():
        parser.add_argument(
            f"--{field_.replace('_', '-')}", type=int, default=None,
            help=f"(default {default:,}; --quick {getattr(QUICK, field_):,})",
        )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    sizes = Sizes(**{f: getattr(args, f) if getattr(args, f) is not None else v
                     for f, v in asdict(sizes).items()})  # fmt: skip
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if "gx" in tools and not GX_PYTHON.exists():
        parser.error(f"{GX_PYTHON} is missing: run bash benchmarks/setup.sh (or drop gx)")

    source = source_state()
    runner = Runner(isolate=not args.no_netns)
    root = Path(tempfile.mkdtemp(prefix="loopml-bench-data-", dir=args.tmp))
    say(f"working in {root}; sizes {asdict(sizes)}; children without network: {runner.isolated}")
    started = time.time()
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    data: dict[str, Any] = {}
    gx_versions = None
    try:
        from loopml.data.contract import load_contract

        contract = load_contract(CONTRACT)
        (root / "contract.yaml").write_text(contract.to_yaml())
        contract_json = root / "contract.json"
        contract_json.write_text(json.dumps(CONTRACT))
        check(len(contract_checks(CONTRACT)) == 39, "the contract should have 39 checks")

        say(f"writing {sizes.rows:,} rows x 20 columns as Parquet and CSV")
        start = time.perf_counter()
        data = write_dataset(root, sizes.rows, sizes.chunk_rows, parquet=True,
                             csv_name="data.csv", seed=SEED)  # fmt: skip
        data["seconds"] = time.perf_counter() - start
        files = {"parquet": root / "data.parquet", "csv": root / "data.csv"}
        say(
            f"wrote Parquet {data['parquet_bytes'] / 1e9:.2f} GB and CSV "
            f"{data['csv_bytes'] / 1e9:.2f} GB in {data['seconds']:.0f} s"
        )
        if args.only in (None, "ingest") and data["csv_bytes"] < sizes.big_csv_bytes:
            per_row = data["csv_bytes"] / sizes.rows
            big_rows = math.ceil(sizes.big_csv_bytes / per_row / sizes.chunk_rows)
            big_rows *= sizes.chunk_rows
            say(f"writing a bigger CSV for the memory target: {big_rows:,} rows")
            start = time.perf_counter()
            big = write_dataset(root, big_rows, sizes.chunk_rows, parquet=False,
                                csv_name="big.csv", seed=SEED + 1)  # fmt: skip
            data["big_rows"] = big_rows
            data["big_csv_bytes"] = big["csv_bytes"]
            files["big_csv"] = root / "big.csv"
            say(f"wrote {big['csv_bytes'] / 1e9:.2f} GB in {time.perf_counter() - start:.0f} s")
        elif args.only in (None, "ingest"):
            files["big_csv"] = files["csv"]
            data["big_rows"] = sizes.rows

        if args.only in (None, "ingest"):
            say("ingest: a fresh workspace and process per repeat")
            results["ingest"] = ingest_part(runner, root, files, sizes, data)
            for name in ("big.csv",):
                (root / name).unlink(missing_ok=True)
        if args.only in (None, "validate"):
            (root / "data.csv").unlink(missing_ok=True)
            say(f"validate: sanity check with injected failures ({', '.join(tools)})")
            results["sanity"] = sanity_part(runner, tools, root, contract_json)
            say("validate: the 39 checks on the data in memory, a process per tool and repeat")
            results["validate"] = validate_part(
                runner, tools, root, files["parquet"], sizes, contract_json
            )
            gx = results["validate"].get("gx", {})
            gx_versions = gx.get("versions")
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    report = {
        "benchmark": "data",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "load_avg_start": load_start,
            "load_avg_end": os.getloadavg(),
        },
        "versions": versions(gx_versions),
        "loopml_source": source,
        "children_without_network": runner.isolated,
        "sizes": asdict(sizes),
        "quick": args.quick,
        "data": data,
        "contract": CONTRACT,
        "results": results,
        "targets": targets(results, sizes),
        "wall_s": round(time.time() - started, 1),
    }
    for name, item in report["targets"].items():
        if isinstance(item, dict):
            got = item.get("got", item.get("got_mb"))
            verdict = "PASS" if item["met"] else "FAIL"
            sized = "" if item.get("sized_as_target", True) else " (not at target size)"
            say(f"target {name}: need {item['need']}, got {got} -> {verdict}{sized}")
    line = json.dumps(report, separators=(",", ":"))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
