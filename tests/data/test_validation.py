"""Batch validation: every row check with exact counts, structure, dataset checks, pandera.

Run this file as a script for a throughput check (not a test; figures go to stdout):
``.venv/bin/python tests/data/test_validation.py [rows]``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.data.contract import ColumnContract, Contract, load_contract
from loopml.data.validation import (
    BatchResult,
    CheckResult,
    ValidationReport,
    Validator,
    contract_to_pandera,
)


def _check(result: ValidationReport, check: str, column: str | None) -> CheckResult:
    found = [c for c in result.checks if c.check == check and c.column == column]
    assert len(found) == 1, f"no single {check} check on {column}: {result.checks}"
    return found[0]


def _invalid_rows(result: BatchResult) -> list[int]:
    return [int(i) for i in np.flatnonzero(~result.valid)]


def _one(contract: Contract | str, data: Any) -> tuple[BatchResult, ValidationReport]:
    validator = Validator(load_contract(contract))
    result = validator.check(data)
    return result, validator.finish(now=datetime(2024, 6, 1))


# -- row checks ------------------------------------------------------------------------


def test_not_null_counts_nulls_and_nan_with_row_numbers_as_examples() -> None:
    frame = pd.DataFrame(
        {"score": [1.0, np.nan, 3.0, None, 5.0], "name": ["a", None, "c", "d", ""]}
    )
    contract = (
        "columns:\n  score: {type: float, nullable: false}\n  name: {type: string, nullable: false}"
    )
    result, report = _one(contract, frame)
    assert _invalid_rows(result) == [1, 3]
    assert _check(report, "not_null", "score").failures == 2
    assert _check(report, "not_null", "score").examples == [1, 3]
    assert _check(report, "not_null", "name").failures == 1  # "" is a value for text
    assert result.reasons.to_pylist()[3] == "score: missing (not nullable)"


def test_min_and_max_count_failures_and_keep_examples() -> None:
    frame = pd.DataFrame({"age": [-5, 0, 120, 121, 300, 40, None]})
    result, report = _one("columns:\n  age: {type: int, min: 0, max: 120}", frame)
    assert _invalid_rows(result) == [0, 3, 4]
    assert _check(report, "min", "age").failures == 1
    assert _check(report, "min", "age").examples == [-5]
    assert _check(report, "max", "age").failures == 2
    assert _check(report, "max", "age").examples == [121, 300]
    assert result.reasons.to_pylist()[:5] == ["age: -5 < min 0", "", "", "age: 121 > max 120",
                                              "age: 300 > max 120"]  # fmt: skip


def test_datetime_and_date_bounds_compare_as_times() -> None:
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(["2019-12-31 23:59", "2020-06-01 00:00", "2031-01-01 00:00"]),
            "day": [date(2020, 1, 1), date(2019, 1, 1), date(2020, 2, 2)],
        }
    )
    contract = (
        "columns:\n  at: {type: datetime, min: '2020-01-01', max: '2030-12-31T23:59:59'}\n"
        "  day: {type: date, min: '2020-01-01'}"
    )
    result, report = _one(contract, frame)
    assert _invalid_rows(result) == [0, 1, 2]
    assert _check(report, "min", "at").examples == ["2019-12-31T23:59:00"]
    assert _check(report, "max", "at").examples == ["2031-01-01T00:00:00"]
    assert _check(report, "min", "day").examples == ["2019-01-01"]


def test_categories_of_category_and_string_columns() -> None:
    frame = pd.DataFrame(
        {"plan": ["basic", "gold", "pro", None, "gold"], "tier": ["a", "b", "c", "a", None]}
    )
    contract = (
        "columns:\n  plan: {type: category, categories: [basic, pro, team]}\n"
        "  tier: {type: string, categories: [a, b]}"
    )
    result, report = _one(contract, frame)
    assert _invalid_rows(result) == [1, 2, 4]
    assert _check(report, "categories", "plan").failures == 2
    assert _check(report, "categories", "plan").examples == ["gold", "gold"]
    assert _check(report, "categories", "tier").failures == 1
    assert _check(report, "type", "plan").failures == 0
    assert result.reasons.to_pylist()[1] == "plan: 'gold' not in categories"


def test_regex_must_match_the_whole_value() -> None:
    frame = pd.DataFrame({"code": ["AB12", "ab12", "AB123", "XAB12", None, "CD99"]})
    result, report = _one("columns:\n  code: {type: string, regex: '[A-Z]{2}[0-9]{2}'}", frame)
    assert _invalid_rows(result) == [1, 2, 3]
    assert _check(report, "regex", "code").failures == 3
    assert _check(report, "regex", "code").examples == ["ab12", "AB123", "XAB12"]
    assert result.reasons.to_pylist()[2] == "code: 'AB123' does not match the regex"


def test_regex_on_a_category_column_checks_each_value() -> None:
    frame = pd.DataFrame({"size": pd.Categorical(["S", "M", "XL", "m", "S"])})
    result, report = _one("columns:\n  size: {type: category, regex: '[A-Z]+'}", frame)
    assert _invalid_rows(result) == [3]
    assert _check(report, "regex", "size").examples == ["m"]


def test_type_failures_fail_the_row_and_become_null() -> None:
    frame = pd.DataFrame({"n": ["1", "abc", " 3 ", "", "2.5", None, "0x"]})
    result, report = _one("columns:\n  n: {type: int}", frame)
    assert _invalid_rows(result) == [1, 4, 6]
    assert _check(report, "type", "n").failures == 3
    assert _check(report, "type", "n").examples == ["abc", "2.5", "0x"]
    assert result.table.column("n").to_pylist() == [1, None, 3, None, None, None, None]
    assert result.reasons.to_pylist()[1] == "n: 'abc' is not a valid int"


def test_a_column_of_mixed_python_types_is_checked_value_by_value() -> None:
    frame = pd.DataFrame({"n": [1, "2", "abc", 3.0, None, 4.5, True]})
    assert frame["n"].dtype == object
    result, report = _one("columns:\n  n: {type: int, nullable: false}", frame)
    assert result.table.column("n").type == pa.int64()
    assert result.table.column("n").to_pylist() == [1, 2, None, None, None, None, None]
    assert _invalid_rows(result) == [2, 3, 4, 5, 6]
    assert _check(report, "type", "n").examples == ["abc", "3.0", "4.5", "True"]
    assert _check(report, "not_null", "n").examples == [4]


def test_a_value_far_outside_the_contract_fails_its_row_and_nothing_else() -> None:
    frame = pd.DataFrame(
        {
            "n": ["1", "9223372036854775808", "-99999999999999999999", "5"],
            "x": [1.0, 1e300, float("inf"), 2.0],
            "at": ["2024-01-01", "9999-12-31T23:59:59", "0001-01-01", "2024-01-02"],
        }
    )
    contract = (
        "columns:\n  n: {type: int, max: 100}\n  x: {type: float, max: 10}\n"
        "  at: {type: datetime, min: '2000-01-01'}"
    )
    result, report = _one(contract, frame)
    assert _invalid_rows(result) == [1, 2]
    assert _check(report, "type", "n").failures == 2
    assert _check(report, "max", "x").examples == [1e300, "inf"]
    assert _check(report, "min", "at").examples == ["0001-01-01T00:00:00"]
    assert result.table.column("at")[1].as_py() == datetime(9999, 12, 31, 23, 59, 59)
    float_to_int, _ = _one("columns:\n  n: {type: int}", pd.DataFrame({"n": [1.0, 1e300, -2.0]}))
    assert _invalid_rows(float_to_int) == [1]
    assert float_to_int.table.column("n").to_pylist() == [1, None, -2]


def test_unique_marks_second_and_later_occurrences_across_batches() -> None:
    validator = Validator(load_contract("columns:\n  id: {type: int, unique: true}"))
    first = validator.check(pd.DataFrame({"id": [1, 2, 2, None, None, 3]}))
    second = validator.check(pd.DataFrame({"id": [4, 1, 5, 2, 4]}))
    third = validator.check(pa.table({"id": pa.array([6, 3], pa.int64())}))
    assert _invalid_rows(first) == [2]
    assert _invalid_rows(second) == [1, 3, 4]
    assert _invalid_rows(third) == [1]
    report = validator.finish()
    assert _check(report, "unique", "id").failures == 5
    assert _check(report, "unique", "id").examples == [2, 1, 2, 4, 3]
    assert second.reasons.to_pylist()[4] == "id: 4 repeats an earlier row"


def test_unique_text_values_across_many_batches() -> None:
    validator = Validator(load_contract("columns:\n  email: {type: string, unique: true}"))
    invalid = 0
    for start in range(0, 50_000, 5_000):
        emails = [f"u{i}@x.io" for i in range(start, start + 5_000)]
        emails[0] = "u7@x.io"  # row 7 of the first batch, every later batch's first row
        invalid += validator.check(pd.DataFrame({"email": emails})).rows_invalid
    report = validator.finish()
    assert invalid == 10
    assert _check(report, "unique", "email").failures == 10
    assert _check(report, "unique", "email").examples == ["u7@x.io"] * 5
    assert report.rows_valid == 50_000 - 10


def test_unique_and_key_agree_with_pandas_duplicated_over_many_batches() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "id": np.concatenate([rng.integers(0, 40_000, 30_000), np.arange(50_000, 80_000)]),
            "a": rng.integers(0, 300, 60_000),
            "b": rng.choice(["x", "y", "z"], 60_000),
        }
    )
    contract = (
        "columns:\n  id: {type: int, unique: true}\n  a: int\n  b: string\ndataset:\n  key: [a, b]"
    )
    validator = Validator(load_contract(contract))
    valid = np.concatenate(
        [
            validator.check(frame.iloc[start : start + 1_000]).valid
            for start in range(0, 60_000, 1_000)
        ]
    )
    expected = ~(frame["id"].duplicated() | frame[["a", "b"]].duplicated()).to_numpy()
    assert (valid == expected).all()
    report = validator.finish()
    assert _check(report, "unique", "id").failures == int(frame["id"].duplicated().sum())


def test_unique_float_treats_zero_and_negative_zero_as_one_value() -> None:
    result, _ = _one(
        "columns:\n  x: {type: float, unique: true}", pd.DataFrame({"x": [0.0, -0.0, 1.5]})
    )
    assert _invalid_rows(result) == [1]


def test_key_is_unique_together_and_never_null() -> None:
    contract = (
        "columns:\n  region: string\n  shop: int\n  sales: float\ndataset:\n  key: [region, shop]"
    )
    validator = Validator(load_contract(contract))
    first = validator.check(
        pd.DataFrame(
            {
                "region": ["n", "n", "s", "n", None, "s"],
                "shop": [1, 2, 1, 1, 1, None],
                "sales": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            }
        )
    )
    second = validator.check(
        pd.DataFrame({"region": ["s", "s"], "shop": [1, 2], "sales": [7.0, 8.0]})
    )
    assert _invalid_rows(first) == [3, 4, 5]
    assert _invalid_rows(second) == [0]
    report = validator.finish()
    assert _check(report, "key_unique", "region, shop").failures == 2
    assert _check(report, "key_unique", "region, shop").examples == [["n", 1], ["s", 1]]
    assert _check(report, "key_not_null", "region").examples == [4]
    assert _check(report, "key_not_null", "shop").examples == [5]
    assert first.reasons.to_pylist()[3:6] == [
        "key (region, shop) = ('n', 1): repeats an earlier row",
        "key: region is missing",
        "key: shop is missing",
    ]


def _repeating(kind: str, rows: int, seed: int) -> pa.Array:
    """Values of ``kind`` with many repeats (near, far and within a batch) and nulls."""
    rng = np.random.default_rng(seed)
    numbers = rng.integers(0, rows // 2, rows)
    missing = rng.random(rows) < 0.05
    if kind == "int":
        return pa.array(numbers, mask=missing)
    if kind == "float":
        values = numbers / 4.0
        values[numbers == 0] = -0.0  # one value with 0.0 (never drawn here) and NaN
        values[rng.random(rows) < 0.01] = np.nan  # NaN is missing, never a repeat
        return pa.array(values, mask=missing)
    if kind == "datetime":
        return pa.array(numbers * 1_000_003, pa.timestamp("us"), mask=missing)
    if kind == "date":
        return pa.array(numbers.astype(np.int32), pa.int32(), mask=missing).view(pa.date32())
    if kind == "bool":
        return pa.array(numbers % 2 == 0, mask=missing)
    assert kind == "category"
    return pa.array(np.array(["S", "M", "L", "XL"])[numbers % 4], mask=missing)


@pytest.mark.parametrize("kind", ["int", "float", "datetime", "date", "bool", "category"])
@pytest.mark.parametrize("rule", ["unique", "key"])
def test_deferred_unique_checks_report_what_batch_by_batch_checks_report(
    kind: str, rule: str
) -> None:
    extra = ", categories: [S, M, L, XL]" if kind == "category" else ""
    unique = ", unique: true" if rule == "unique" else ""
    key = "\n  key: [v]" if rule == "key" else ""
    contract = load_contract(
        f"columns:\n  v: {{type: {kind}{unique}{extra}}}\n  x: {{type: int, max: 90}}\n"
        f"dataset:\n  rows: {{min: 60000}}{key}"
    )
    rows = 40_000
    data = pa.table(
        {"v": _repeating(kind, rows, 7), "x": np.random.default_rng(8).integers(0, 100, rows)}
    )
    eager, deferred = Validator(contract), Validator(contract)
    deferred.defer_unique_checks()
    start = 0
    for size in [1, 999, 7_000, 12_000, 3, 19_997]:  # uneven batches
        batch = data.slice(start, size)
        start += size
        one, other = eager.check(batch), deferred.check(batch)
        expected = pa.compute.less_equal(batch.column("x"), 90)
        if rule == "key":  # a key is never missing (NaN is missing)
            expected = pa.compute.and_(expected, other.table.column("v").is_valid())
        assert (other.valid == expected.to_numpy(zero_copy_only=False)).all()  # no repeats
        assert (one.valid <= other.valid).all()
    assert start == rows
    expected, got = eager.finish().to_dict(), deferred.finish().to_dict()
    assert got == expected  # counts, examples, rows_valid (rows failing x too), min_rows
    check = "unique" if rule == "unique" else "key_unique"
    failing = next(c for c in got["checks"] if c["check"] == check)
    assert failing["failures"] > 0 and len(failing["examples"]) == min(5, failing["failures"])
    assert next(c for c in got["checks"] if c["check"] == "min_rows")["failures"] == 1
    assert deferred.finish().to_dict() == got  # finish() again, same answer


def test_deferred_unique_checks_must_come_first_and_leave_text_to_the_batches() -> None:
    contract = load_contract(
        "columns:\n  id: {type: int, unique: true}\n  email: {type: string, unique: true}"
    )
    validator = Validator(contract)
    validator.defer_unique_checks()
    first = validator.check(pd.DataFrame({"id": [1, 1, 2], "email": ["a", "b", "a"]}))
    assert _invalid_rows(first) == [2]  # the repeated email; the repeated id waits
    report = validator.finish()
    assert _check(report, "unique", "id").failures == 1
    assert _check(report, "unique", "id").examples == [1]
    assert _check(report, "unique", "email").examples == ["a"]
    assert (report.rows_valid, report.rows_invalid) == (1, 2)
    started = Validator(contract)
    started.check(pd.DataFrame({"id": [1], "email": ["a"]}))
    with pytest.raises(RuntimeError, match="before the first batch"):
        started.defer_unique_checks()


def test_later_keys_name_exactly_the_later_repeats_across_many_batches() -> None:
    from loopml.data._uniqueness import LaterKeys

    rng = np.random.default_rng(4)
    keys = rng.integers(0, 50_000, 200_000).astype(np.uint64)
    present = rng.random(len(keys)) > 0.1
    later = LaterKeys()
    for start in range(0, len(keys), 7_000):
        mask = present[start : start + 7_000]
        later.add(keys[start : start + 7_000], None if mask.all() else mask, start)
    seen: set[int] = set()
    expected = []
    for row, key in enumerate(keys.tolist()):
        if not present[row]:
            continue
        if key in seen:
            expected.append(row)
        seen.add(key)
    rows, repeated = later.repeats()
    assert rows.tolist() == expected
    assert repeated.tolist() == keys[expected].tolist()
    assert LaterKeys().repeats()[0].tolist() == []


def test_reasons_list_every_failure_of_a_row_in_contract_order() -> None:
    frame = pd.DataFrame(
        {"age": [30, 150, 20], "plan": ["pro", "gold", "pro"], "email": ["a@b", "x", "c@d"]}
    )
    contract = (
        "columns:\n  age: {type: int, max: 120}\n"
        "  plan: {type: category, categories: [basic, pro]}\n"
        "  email: {type: string, regex: '[^@]+@[^@]+'}"
    )
    result, _ = _one(contract, frame)
    assert result.reasons.to_pylist() == [
        "",
        "age: 150 > max 120; plan: 'gold' not in categories; email: 'x' does not match the regex",
        "",
    ]
    assert pa.array(result.reasons, type=pa.string()).type == pa.string()


# -- conformance -------------------------------------------------------------------------


def test_conformed_table_has_contract_types_and_order() -> None:
    frame = pd.DataFrame(
        {
            "flag": ["true", "No", "1", None],
            "at": [
                "2024-01-01",
                "2024-01-01T10:30:00",
                "2024-01-01T10:30:00+02:00",
                "2024-01-01 10:30",
            ],
            "day": ["2024-02-29", "2024-03-01", None, "2024-03-02"],
            "n": pd.array([1, 2, None, 4], dtype="Int64"),
            "plan": ["pro", "basic", "pro", None],
            "x": [1, 2, 3, 4],
        }
    )
    contract = (
        "columns:\n  n: int\n  x: float\n  plan: {type: category, categories: [basic, pro, team]}\n"
        "  day: date\n  at: datetime\n  flag: bool\n  free: category"
    )
    result, report = _one(contract, frame.assign(free=["a", "b", "a", "c"]))
    table = result.table
    assert table.schema.names == ["n", "x", "plan", "day", "at", "flag", "free"]
    assert [str(t) for t in table.schema.types] == [
        "int64", "double", "dictionary<values=string, indices=int32, ordered=0>", "date32[day]",
        "timestamp[us]", "bool", "dictionary<values=string, indices=int32, ordered=0>",
    ]  # fmt: skip
    assert table.column("n").to_pylist() == [1, 2, None, 4]
    assert table.column("x").to_pylist() == [1.0, 2.0, 3.0, 4.0]
    assert table.column("at").to_pylist() == [
        datetime(2024, 1, 1), datetime(2024, 1, 1, 10, 30), datetime(2024, 1, 1, 8, 30),
        datetime(2024, 1, 1, 10, 30),
    ]  # fmt: skip
    assert table.column("day").to_pylist() == [date(2024, 2, 29), date(2024, 3, 1), None,
                                               date(2024, 3, 2)]  # fmt: skip
    assert table.column("flag").to_pylist() == [True, False, True, None]
    plan = table.column("plan").chunk(0)
    assert plan.dictionary.to_pylist() == ["basic", "pro", "team"]  # the contract's, in order
    assert plan.to_pylist() == ["pro", "basic", "pro", None]
    assert report.passed, str(report)


def test_ints_stay_ints_and_typed_arrow_input_is_not_copied() -> None:
    ids = pa.array(np.arange(1000, dtype=np.int64))
    result, report = _one("columns:\n  id: {type: int, unique: true}", pa.table({"id": ids}))
    assert result.table.column("id").chunk(0).buffers()[1].address == ids.buffers()[1].address
    assert report.passed


def test_timezone_aware_times_are_stored_as_naive_utc() -> None:
    paris = pd.to_datetime(["2024-01-01 10:00", "2024-07-01 10:00"]).tz_localize("Europe/Paris")
    result, report = _one("columns:\n  at: {type: datetime, max: '2024-07-01T08:00:00'}",
                          pd.DataFrame({"at": paris}))  # fmt: skip
    assert result.table.column("at").to_pylist() == [
        datetime(2024, 1, 1, 9),
        datetime(2024, 7, 1, 8),
    ]
    assert report.passed


def test_unique_category_compares_values_not_batch_codes() -> None:
    contract = "columns:\n  size: {type: category, categories: [S, M, L], unique: true}"
    validator = Validator(load_contract(contract))
    first = validator.check(pd.DataFrame({"size": pd.Categorical(["M", "S"])}))
    second = validator.check(pd.DataFrame({"size": ["L", "M"]}))
    assert first.valid.tolist() == [True, True]
    assert second.valid.tolist() == [True, False]
    free = Validator(load_contract("columns:\n  tag: {type: category, unique: true}"))
    free.check(pd.DataFrame({"tag": ["x", "y"]}))
    assert free.check(pd.DataFrame({"tag": ["z", "x"]})).valid.tolist() == [True, False]


def test_blank_text_counts_as_missing_for_typed_columns() -> None:
    frame = pd.DataFrame({"n": ["1", "  ", "", "2"]})
    result, report = _one("columns:\n  n: {type: int, nullable: false}", frame)
    assert _check(report, "not_null", "n").failures == 2
    assert _check(report, "type", "n").failures == 0
    assert result.table.column("n").to_pylist() == [1, None, None, 2]


def test_record_batch_table_and_frame_inputs_give_the_same_result() -> None:
    frame = pd.DataFrame({"id": [1, 2, 2, 4], "age": [10.0, np.nan, 200.0, 5.0], "s": list("abca")})
    contract = (
        "columns:\n  id: {type: int, unique: true}\n"
        "  age: {type: float, max: 100, nullable: false}\n  s: category"
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    outcomes = [_one(contract, data)[0] for data in (frame, table, table.to_batches()[0])]
    for outcome in outcomes:
        assert _invalid_rows(outcome) == [1, 2]
        assert outcome.reasons.equals(outcomes[0].reasons)
        assert outcome.table.equals(outcomes[0].table)


def test_an_empty_batch_is_valid_and_counts_nothing() -> None:
    contract = load_contract("columns:\n  id: {type: int, unique: true}\n  s: string")
    validator = Validator(contract)
    result = validator.check(
        pa.table({"id": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    )
    assert result.rows == 0 and result.table.num_rows == 0
    assert validator.finish().rows_in == 0


# -- structure ---------------------------------------------------------------------------


def test_a_missing_column_is_a_structural_failure_naming_it() -> None:
    result, report = _one("columns:\n  id: int\n  age: int", pd.DataFrame({"id": [1, 2]}))
    assert report.structural == [
        "column 'age' is in the contract but not in the data; add it to the data or remove it "
        "from the contract"
    ]
    assert result.structural == report.structural
    assert not report.passed
    assert result.table.column("age").to_pylist() == [None, None]


def test_extra_columns_error_drop_or_allow() -> None:
    frame = pd.DataFrame({"id": [1, 2], "extra": ["x", "y"]})
    _, failed = _one("columns:\n  id: int", frame)
    assert failed.structural == [
        "column 'extra' is in the data but not in the contract; add it to the contract, or set "
        "extra_columns to drop or allow"
    ]
    dropped, report = _one("columns:\n  id: int\ndataset:\n  extra_columns: drop", frame)
    assert dropped.table.schema.names == ["id"] and report.passed
    kept, report = _one("columns:\n  id: int\ndataset:\n  extra_columns: allow", frame)
    assert kept.table.schema.names == ["id", "extra"] and report.passed
    assert kept.table.column("extra").to_pylist() == ["x", "y"]


def test_repeated_column_names_are_a_structural_failure() -> None:
    frame = pd.DataFrame([[1, 2], [3, 4]], columns=["id", "id"])
    _, report = _one("columns:\n  id: int", frame)
    assert report.structural == [
        "column 'id' appears 2 times in the data; column names must be unique, rename or drop "
        "the copies"
    ]


def test_a_column_whose_type_cannot_become_the_contract_type_is_structural() -> None:
    table = pa.table({"id": [1, 2], "tags": pa.array([["a"], ["b"]])})
    result, report = _one("columns:\n  id: int\n  tags: int", table)
    assert report.structural == [
        "column 'tags' holds list<item: string> values, which cannot become int; fix the data "
        "or change the column's type in the contract"
    ]
    assert result.valid.tolist() == [True, True]


def test_structural_problems_are_reported_once_across_batches() -> None:
    validator = Validator(load_contract("columns:\n  id: int\n  age: int"))
    for _ in range(3):
        validator.check(pd.DataFrame({"id": [1]}))
    assert len(validator.finish().structural) == 1


# -- dataset checks --------------------------------------------------------------------


def test_freshness_fails_when_the_newest_valid_time_is_too_old() -> None:
    contract = load_contract(
        "columns:\n  at: {type: datetime, max: '2024-05-30'}\ndataset:\n"
        "  freshness: {column: at, max_age: 36h}"
    )
    validator = Validator(contract)
    validator.check(pd.DataFrame({"at": pd.to_datetime(["2024-05-28 12:00", "2024-05-01 00:00"])}))
    validator.check(pd.DataFrame({"at": pd.to_datetime(["2024-05-31 12:00"])}))  # invalid: too late
    fresh = _check(validator.finish(now=datetime(2024, 5, 29, 23, 0)), "freshness", "at")
    stale = _check(validator.finish(now=datetime(2024, 5, 30, 0, 1)), "freshness", "at")
    assert fresh.failures == 0
    assert stale.failures == 1 and stale.examples == ["2024-05-28T12:00:00"]
    assert stale.dataset_level


def test_freshness_of_a_date_column_counts_to_the_end_of_the_day() -> None:
    contract = load_contract(
        "columns:\n  day: date\ndataset:\n  freshness: {column: day, max_age: 1d}"
    )
    validator = Validator(contract)
    validator.check(pd.DataFrame({"day": ["2024-05-01", "2024-05-03"]}))
    assert validator.finish(now=datetime(2024, 5, 4, 23, 0)).passed
    assert not validator.finish(now=datetime(2024, 5, 5, 1, 0)).passed


def test_freshness_fails_when_no_row_has_a_valid_time() -> None:
    contract = load_contract(
        "columns:\n  at: datetime\ndataset:\n  freshness: {column: at, max_age: 7d}"
    )
    _, report = _one(contract, pd.DataFrame({"at": [None, "nope"]}))
    assert _check(report, "freshness", "at").failures == 1


def test_row_bounds_count_valid_rows() -> None:
    contract = load_contract(
        "columns:\n  n: {type: int, max: 10}\ndataset:\n  rows: {min: 3, max: 4}"
    )
    _, report = _one(contract, pd.DataFrame({"n": [1, 2, 50, 60]}))
    assert _check(report, "min_rows", None).failures == 1
    assert _check(report, "min_rows", None).examples == [2]
    assert _check(report, "max_rows", None).failures == 0
    _, report = _one(contract, pd.DataFrame({"n": [1, 2, 3, 4, 5]}))
    assert _check(report, "max_rows", None).failures == 1
    assert not report.passed and not report.dataset_passed


def test_rows_in_equals_valid_plus_invalid_over_several_batches() -> None:
    contract = load_contract(
        "columns:\n  id: {type: int, unique: true, nullable: false}\n  x: {type: float, min: 0}\n"
        "  c: {type: category, categories: [a, b]}"
    )
    validator = Validator(contract)
    rng = np.random.default_rng(7)
    total_invalid = 0
    for batch in range(6):
        rows = int(rng.integers(0, 3000))
        frame = pd.DataFrame(
            {
                "id": rng.integers(0, 20_000, rows),
                "x": np.where(rng.random(rows) < 0.05, np.nan, rng.normal(1, 1, rows)),
                "c": rng.choice(["a", "b", "z"], rows, p=[0.49, 0.49, 0.02]),
            }
        )
        result = validator.check(frame if batch % 2 else pa.Table.from_pandas(frame))
        assert result.rows_valid + result.rows_invalid == rows
        total_invalid += result.rows_invalid
    report = validator.finish()
    assert report.rows_in == report.rows_valid + report.rows_invalid
    assert report.rows_invalid == total_invalid > 0


# -- the report ----------------------------------------------------------------------------


def _failing_report() -> ValidationReport:
    frame = pd.DataFrame({"age": [1, 200, 300], "at": pd.to_datetime(["2024-01-01"] * 3)})
    contract = (
        "columns:\n  age: {type: int, max: 120}\n  at: datetime\n  gone: int\n"
        "dataset:\n  freshness: {column: at, max_age: 1d}"
    )
    return _one(contract, frame)[1]


def test_report_round_trips_through_json() -> None:
    report = _failing_report()
    stored = json.dumps(report.to_dict())
    again = ValidationReport.from_dict(json.loads(stored))
    assert again == report
    assert again.to_dict()["passed"] is False


def test_report_frame_has_one_row_per_check() -> None:
    frame = _failing_report().to_frame()
    assert list(frame.columns) == ["check", "column", "failures", "examples", "detail"]
    row = frame[(frame["check"] == "max") & (frame["column"] == "age")].iloc[0]
    assert row["failures"] == 2 and row["examples"] == [200, 300]
    assert len(frame) == len(_failing_report().checks)


def test_report_summary_names_failures_and_structure() -> None:
    text = str(_failing_report())
    assert text.startswith("Validation FAILED: 3 rows in, 1 valid, 2 invalid")
    assert "structural: column 'gone' is in the contract but not in the data" in text
    assert "age max: 2 failing (max 120), e.g. 200, 300" in text
    assert "at freshness: 1 failing" in text


# -- pandera gives the same answer -----------------------------------------------------


def test_pandera_schema_fails_the_same_rows() -> None:
    import pandera.pandas as pandera

    contract = load_contract(
        """
columns:
  id: {type: int, nullable: false, unique: true}
  age: {type: int, min: 0, max: 120}
  plan: {type: category, categories: [basic, pro, team]}
  email: {type: string, regex: '[^@]+@[^@]+'}
  score: {type: float, nullable: false, min: 0}
  day: {type: date, min: '2020-01-01'}
  seen: {type: datetime, max: '2025-01-01'}
  tier: {type: string, categories: [a, b]}
  count: {type: int}
  region: string
  shop: int
dataset:
  key: [region, shop]
"""
    )
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13],
            "age": [30, 150, -1, 40, None, 50, 60, 70, 80, 90, 20, 21, 22],
            "plan": ["basic", "gold", "pro", None, "team", "basic", "pro", "team", "basic", "pro",
                     "team", "pro", "pro"],
            "email": ["a@b", "a@b", "bad", "c@d", "e@f", "g@h", None, "i@j", "k@l", "m@n", "o@p",
                      "q@r", "s@t"],
            "score": [1.0, 2.0, 3.0, 4.0, -5.0, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "day": ["2021-01-01"] * 6 + ["2019-05-05"] + ["2021-01-02"] * 6,
            "seen": pd.to_datetime(["2024-01-01"] * 7 + ["2026-01-01"] + ["2024-01-01"] * 5),
            "tier": ["a"] * 8 + ["z", "a", "b", "a", "b"],
            "count": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "many"],
            "region": ["n", "n", "s", "s", "e", "e", "w", "w", "n", "n", None, "x", "y"],
            "shop": [1, 2, 1, 2, 1, 2, 1, 2, 3, 1, 1, 1, 1],
        }
    )  # fmt: skip
    ours = Validator(contract).check(frame)
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        contract_to_pandera(contract).validate(frame, lazy=True)
    cases = raised.value.failure_cases
    theirs = sorted({int(i) for i in cases["index"].dropna()})
    assert theirs == _invalid_rows(ours) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]


def test_pandera_schema_accepts_data_our_validator_accepts() -> None:
    contract = load_contract(
        "columns:\n  id: {type: int, unique: true}\n  x: {type: float, min: 0}"
    )
    frame = pd.DataFrame({"id": [1, 2, 3], "x": [0.5, 1.5, None]})
    assert Validator(contract).check(frame).valid.all()
    contract_to_pandera(contract).validate(frame, lazy=True)


# -- throughput (a script, not a test) -------------------------------------------------------


def _throughput(rows: int, repeat: int = 3) -> None:
    """``Validator.check`` against a bare numpy pass of the same 39 checks, median of
    ``repeat`` runs on rows x 20 columns."""
    import statistics
    import time

    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {"id": rng.permutation(rows).astype(np.int64)}
    for i in range(8):
        values = rng.integers(0, 1000, rows)
        values[rng.integers(0, rows, rows // 10_000)] = 5000
        columns[f"int_{i}"] = values
    for i in range(6):
        values = rng.normal(0, 2, rows)
        values[rng.integers(0, rows, rows // 100)] = np.nan
        values[rng.integers(0, rows, rows // 10_000)] = 100.0
        columns[f"float_{i}"] = values
    for i in range(2):
        columns[f"cat_{i}"] = rng.choice(
            np.array(["basic", "pro", "team", "gold"]), rows, p=[0.5, 0.3, 0.1999, 0.0001]
        )
    start = np.datetime64("2024-01-01T00:00:00", "us")
    columns["ts"] = start + rng.integers(0, 10**12, rows).astype("timedelta64[us]")
    columns["flag"] = rng.random(rows) < 0.5
    columns["email"] = np.array([f"user{i}@example.com" for i in range(rows)], dtype=object)
    plans = ["basic", "pro", "team"]
    contract = Contract(
        [ColumnContract("id", "int", nullable=False, unique=True)]
        + [ColumnContract(f"int_{i}", "int", min=0, max=999) for i in range(8)]
        + [ColumnContract(f"float_{i}", "float", nullable=False, min=-50, max=50) for i in range(6)]
        + [ColumnContract(f"cat_{i}", "category", categories=plans) for i in range(2)]
        + [ColumnContract("ts", "datetime", max="2030-01-01"), ColumnContract("flag", "bool"),
           ColumnContract("email", "string")]
    )  # fmt: skip
    table = pa.table({name: pa.array(values, from_pandas=True) for name, values in columns.items()})
    frame = table.to_pandas()
    text = table.cast(pa.schema([pa.field(name, pa.string()) for name in table.schema.names]))
    arrays = dict(columns, cat_0=columns["cat_0"].astype("U5"), cat_1=columns["cat_1"].astype("U5"))
    late = np.datetime64("2030-01-01", "us")

    def numpy_pass() -> np.ndarray[Any, Any]:
        invalid = np.zeros(rows, dtype=bool)
        counts = []
        ordered = np.sort(arrays["id"])
        counts.append(int(np.count_nonzero(ordered[1:] == ordered[:-1])))
        for i in range(8):
            values = arrays[f"int_{i}"]
            low, high = values < 0, values > 999
            counts += [int(low.sum()), int(high.sum())]
            invalid |= low | high
        for i in range(6):
            values = arrays[f"float_{i}"]
            nan, low, high = np.isnan(values), values < -50, values > 50
            counts += [int(nan.sum()), int(low.sum()), int(high.sum())]
            invalid |= nan | low | high
        for i in range(2):
            values = arrays[f"cat_{i}"]
            bad = ~((values == "basic") | (values == "pro") | (values == "team"))
            counts.append(int(bad.sum()))
            invalid |= bad
        too_late = arrays["ts"] > late
        counts.append(int(too_late.sum()))
        return invalid | too_late

    def validate(data: Any) -> BatchResult:
        validator = Validator(contract)
        result = validator.check(data)
        validator.finish()
        return result

    assert (~validate(table).valid == numpy_pass()).all()

    def median(action: Any) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            action()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    baseline = median(numpy_pass)
    checks = sum(1 for c in Validator(contract)._results if c.check != "type")
    print(f"{rows:,} rows x {len(columns)} columns, {checks} checks, median of {repeat}")
    print(f"  numpy pass          {baseline * 1000:7.0f} ms  {rows / baseline / 1e6:6.2f} M rows/s")
    for label, data in (("arrow table", table), ("pandas frame", frame), ("all text (CSV)", text)):
        elapsed = median(lambda data=data: validate(data))
        speed = rows / elapsed / 1e6
        print(f"  Validator.check on {label:15s} {elapsed * 1000:7.0f} ms  {speed:6.2f} M rows/s"
              f"  {elapsed / baseline:5.2f}x numpy")  # fmt: skip


if __name__ == "__main__":
    import sys

    _throughput(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)


def test_seen_set_marks_exactly_the_later_repeats_across_many_batches() -> None:
    from loopml.data._uniqueness import SeenSet

    rng = np.random.default_rng(3)
    keys = rng.integers(0, 50_000, 200_000).astype(np.uint64)  # many repeats
    seen = SeenSet()
    marked = []
    for start in range(0, len(keys), 7_000):
        batch = keys[start : start + 7_000]
        repeats = seen.repeats(batch, None)
        marked.append(np.zeros(len(batch), bool) if repeats is None else repeats)
    first_seen: set[int] = set()
    expected = []
    for key in keys.tolist():
        expected.append(key in first_seen)
        first_seen.add(key)
    assert np.array_equal(np.concatenate(marked), np.array(expected))
