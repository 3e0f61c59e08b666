"""Data contracts: loading YAML/JSON/dicts, round trips, errors that name the line, inference."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.data.contract import (
    ColumnContract,
    Contract,
    Freshness,
    infer_contract,
    load_contract,
)
from loopml.errors import NotFoundError, ValidationError

CHURN = """\
columns:
  customer_id: {type: int, nullable: false, unique: true}
  age: {type: int, min: 0, max: 120}
  plan: {type: category, categories: [basic, pro, team]}
  email: {type: string, regex: '[^@]+@[^@]+'}
  signup: {type: datetime, min: '2020-01-01'}
  score: float
dataset:
  rows: {min: 1, max: 10000000}
  key: [customer_id]
  freshness: {column: signup, max_age: 7d}
  extra_columns: drop
"""


def test_yaml_text_loads_into_columns_and_dataset_fields() -> None:
    contract = load_contract(CHURN)
    assert contract.column_names == ["customer_id", "age", "plan", "email", "signup", "score"]
    assert contract.column("customer_id") == ColumnContract(
        "customer_id", "int", nullable=False, unique=True
    )
    assert contract.column("age").min == 0 and contract.column("age").max == 120
    assert contract.column("plan").categories == ["basic", "pro", "team"]
    assert contract.column("score") == ColumnContract("score", "float")
    assert (contract.min_rows, contract.max_rows) == (1, 10_000_000)
    assert contract.key == ["customer_id"]
    assert contract.freshness == Freshness("signup", "7d")
    assert contract.extra_columns == "drop"


def test_yaml_json_and_dict_forms_round_trip_to_the_same_contract(tmp_path: Path) -> None:
    contract = load_contract(CHURN)
    assert load_contract(contract.to_yaml()) == contract
    assert load_contract(contract.to_json()) == contract
    assert Contract.from_dict(contract.to_dict()) == contract
    assert load_contract(json.loads(contract.to_json())) == contract
    (tmp_path / "churn.yaml").write_text(contract.to_yaml())
    (tmp_path / "churn.json").write_text(contract.to_json())
    assert load_contract(tmp_path / "churn.yaml") == contract
    assert load_contract(str(tmp_path / "churn.json")) == contract


def test_to_yaml_writes_one_line_per_column() -> None:
    text = load_contract(CHURN).to_yaml()
    assert "  age: {type: int, min: 0, max: 120}\n" in text
    assert "  key: [customer_id]\n" in text
    assert "  freshness: {column: signup, max_age: 7d}\n" in text


def test_sha256_is_equal_for_equal_meaning_and_changes_with_column_order() -> None:
    a = Contract([ColumnContract("x", "float", min=0.0), ColumnContract("y", "int")])
    b = load_contract("columns:\n  x: {type: float, min: 0}\n  y: {type: int, nullable: true}\n")
    swapped = Contract([ColumnContract("y", "int"), ColumnContract("x", "float", min=0.0)])
    assert a.sha256 == b.sha256
    assert len(a.sha256) == 64
    assert swapped.sha256 != a.sha256


def test_yaml_scalars_follow_yaml_1_2_so_yes_and_dates_stay_text() -> None:
    contract = load_contract(
        "columns:\n"
        "  answer: {type: category, categories: [yes, no, on, 1]}\n"
        "  day: {type: date, min: 2024-01-31}\n"
    )
    assert contract.column("answer").categories == ["yes", "no", "on", "1"]
    assert contract.column("day").min == "2024-01-31"
    assert load_contract(contract.to_yaml()) == contract


def test_column_lookup_names_the_known_columns() -> None:
    with pytest.raises(NotFoundError, match=r"no column 'agee'.*'age'"):
        load_contract(CHURN).column("agee")


def test_max_age_parses_units_and_combinations() -> None:
    assert Freshness("t", "36h").max_age_timedelta == timedelta(hours=36)
    assert Freshness("t", "1d12h").max_age_timedelta == timedelta(hours=36)
    assert Freshness("t", "30m").max_age_timedelta == timedelta(minutes=30)
    assert Freshness("t", "2w").max_age_timedelta == timedelta(days=14)


# -- invalid contracts name the line --------------------------------------------------

INVALID = {
    "yaml syntax": (
        "columns:\n  age: {type: int\n  plan: {type: category}\n",
        r"line 3, column \d+: YAML syntax error.*started on line 2",
    ),
    "unknown type": (
        "columns:\n  id: int\n  age: {type: integer}\n",
        r"line 3, column 9 \(columns\.age\.type\): unknown column type 'integer'; "
        r"did you mean 'int'\?",
    ),
    "unknown field": (
        "columns:\n  age: {type: int,\n        nullabel: false}\n",
        r"line 3, column 9 \(columns\.age\.nullabel\): unknown field 'nullabel'; "
        r"did you mean 'nullable'\?",
    ),
    "min above max": (
        "columns:\n  age:\n    type: int\n    min: 10\n    max: 1\n",
        r"line 4, column 5 \(columns\.age\.min\): min 10 is greater than max 1; make min at most",
    ),
    "bad regex": (
        "columns:\n  email: {type: string, regex: '[a-'}\n",
        r"line 2, column 25 \(columns\.email\.regex\): invalid regex '\[a-'",
    ),
    "regex RE2 cannot run": (
        "columns:\n  email: {type: string, regex: '(?=a)b'}\n",
        r"line 2, column 25 \(columns\.email\.regex\): .*not supported by the RE2 engine",
    ),
    "freshness column missing": (
        "columns:\n  signup: datetime\ndataset:\n  freshness: {column: signupp, max_age: 7d}\n",
        r"line 4, column 15 \(dataset\.freshness\.column\): freshness names 'signupp', which is "
        r"not a column of the contract; did you mean 'signup'\?",
    ),
    "key column missing": (
        "columns:\n  id: int\ndataset:\n  key:\n    - id\n    - region\n",
        r"line 6, column 7 \(dataset\.key\.1\): key names 'region', which is not a column",
    ),
    "bad max_age": (
        "columns:\n  signup: datetime\ndataset:\n  freshness: {column: signup, max_age: 7 days}\n",
        r"line 4, column 31 \(dataset\.freshness\.max_age\): max_age '7 days' is not a positive "
        r"duration; write a number and a unit",
    ),
    "column twice": (
        "columns:\n  age: int\n  age: float\n",
        r"line 3, column 3 \(columns\.age\): 'age' appears twice \(first on line 2\); keep one",
    ),
    "bounds on text": (
        "columns:\n  name: {type: string, min: 3}\n",
        r"line 2, column 24 \(columns\.name\.min\): min applies to int, float, datetime and date",
    ),
    "bad datetime bound": (
        "columns:\n  signup: {type: datetime, max: tomorrow}\n",
        r"line 2, column 28 \(columns\.signup\.max\): max of a datetime column must be ISO text",
    ),
    "nullable not a bool": (
        "columns:\n  age: {type: int, nullable: yes}\n",
        r"line 2, column 20 \(columns\.age\.nullable\): nullable must be true or false, got 'yes'",
    ),
    "extra_columns unknown": (
        "columns:\n  age: int\ndataset:\n  extra_columns: ignore\n",
        r"line 4, column 3 \(dataset\.extra_columns\): extra_columns must be one of error, drop",
    ),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_yaml_contract_names_the_line(case: str) -> None:
    text, message = INVALID[case]
    with pytest.raises(ValidationError, match=message):
        load_contract(text)


def test_invalid_contract_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text("columns:\n  age: {type: int, min: 5, max: 1}\n")
    with pytest.raises(ValidationError, match=rf"in {path}: line 2, column 20"):
        load_contract(path)


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = (
        "columns:\n"
        "  age: {type: int, min: 5, max: 1}\n"
        "  plan: {type: category, categorie: [a]}\n"
        "dataset:\n"
        "  key: [id]\n"
    )
    with pytest.raises(ValidationError) as raised:
        load_contract(text)
    message = str(raised.value)
    assert "3 problems" in message
    assert message.index("line 2") < message.index("line 3") < message.index("line 5")


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "churn.json"
    path.write_text('{\n  "columns": {\n    "age": {"type": "int",}\n  }\n}\n')
    with pytest.raises(ValidationError, match=r"line 3, column 27: Expecting property name"):
        load_contract(path)


def test_json_semantic_error_names_line_and_path() -> None:
    text = '{\n  "columns": {\n    "age": {"type": "int", "min": 9, "max": 1}\n  }\n}'
    with pytest.raises(ValidationError, match=r"line 3, column 28 \(columns\.age\.min\)"):
        load_contract(text)


def test_json_repeated_key_is_refused_with_its_line() -> None:
    text = '{"columns": {\n  "age": {"type": "int"},\n  "age": {"type": "float"}}}'
    with pytest.raises(ValidationError, match=r"line 3, column 3 \(columns\.age\): 'age' appears"):
        load_contract(text)


def test_dict_contract_errors_name_the_path() -> None:
    with pytest.raises(ValidationError, match=r"columns\.age\.max: max of an int column must"):
        load_contract({"columns": {"age": {"type": "int", "max": "old"}}})


def test_contract_built_in_python_is_checked_too() -> None:
    with pytest.raises(ValidationError, match=r"dataset\.key\.0: key names 'id'"):
        Contract([ColumnContract("age", "int")], key=["id"])


def test_missing_contract_file_is_not_found() -> None:
    with pytest.raises(NotFoundError, match=r"No contract file at 'nothing/here\.yaml'"):
        load_contract("nothing/here.yaml")


def test_a_contract_without_columns_says_how_to_write_one() -> None:
    with pytest.raises(ValidationError, match=r"'columns' must map each column name"):
        load_contract("dataset:\n  key: [id]\n")


# -- inference -------------------------------------------------------------------------


def _mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [10, 11, 12, 13, 14, 15],
            "age": [31, 45, 22, 60, 38, 51],
            "income": [1.5, np.nan, 3.25, 4.0, 2.0, 9.5],
            "churned": [True, False, False, True, False, False],
            "signup": pd.to_datetime(
                ["2024-01-02", "2024-02-01", "2024-03-05", None, "2024-01-20", "2024-06-30"]
            ),
            "plan": ["basic", "pro", "basic", "team", "pro", "basic"],
            "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"],
            "note": ["x", "y", None, "z", "w", "v"],
        }
    )


def test_infer_contract_on_a_mixed_frame() -> None:
    contract = infer_contract(_mixed_frame())
    by_name = {c.name: c for c in contract.columns}
    assert by_name["customer_id"] == ColumnContract(
        "customer_id", "int", nullable=False, unique=True
    )
    assert by_name["age"] == ColumnContract(
        "age", "int", nullable=False, min=22, max=60, unique=True
    )
    assert by_name["income"] == ColumnContract("income", "float", nullable=True, min=1.5, max=9.5)
    assert by_name["churned"] == ColumnContract("churned", "bool", nullable=False)
    assert by_name["signup"] == ColumnContract(
        "signup", "datetime", nullable=True, min="2024-01-02T00:00:00"
    )
    assert by_name["plan"] == ColumnContract(
        "plan", "category", nullable=False, categories=["basic", "pro", "team"]
    )
    assert by_name["email"] == ColumnContract("email", "string", nullable=False, unique=True)
    assert by_name["note"] == ColumnContract("note", "string", nullable=True)
    assert contract.key == ["customer_id"]
    assert contract.column_names == list(_mixed_frame().columns)


def test_infer_contract_reads_arrow_tables_and_its_result_round_trips() -> None:
    table = pa.Table.from_pandas(_mixed_frame(), preserve_index=False)
    contract = infer_contract(table)
    assert contract == infer_contract(_mixed_frame())
    assert load_contract(contract.to_yaml()) == contract


def test_infer_contract_keeps_many_distinct_texts_as_string() -> None:
    frame = pd.DataFrame({"city": [f"c{i % 60}" for i in range(600)]})
    assert infer_contract(frame).column("city").type == "string"
    assert infer_contract(frame, categories_max=60).column("city").type == "category"


def test_infer_contract_refuses_repeated_column_names() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValidationError, match=r"repeated column names \(a\)"):
        infer_contract(frame)


def test_inferred_bounds_leave_room_for_new_ids_and_new_dates() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "age": [30, 40, 50],
            "signup": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01"]),
        }
    )
    contract = infer_contract(frame)
    ids, age, signup = (contract.column(n) for n in ("customer_id", "age", "signup"))
    assert (ids.min, ids.max, ids.unique) == (None, None, True)
    assert contract.key == ["customer_id"]
    assert (age.min, age.max) == (30, 50)
    assert signup.min is not None and signup.max is None
