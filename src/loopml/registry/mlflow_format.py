"""Writes and reads scikit-learn models in MLflow's model format, without importing mlflow.

:func:`write_mlflow_model` writes what ``mlflow.sklearn.save_model(...,
serialization_format="pickle")`` writes (MLmodel with the ``python_function`` and
``sklearn`` flavors, ``model.pkl``, ``requirements.txt``, ``conda.yaml``,
``python_env.yaml``, the signature and input example), so ``mlflow.pyfunc.load_model``
serves it; users export without having mlflow installed. :func:`read_mlflow_model` reads
directories written by MLflow's sklearn flavor (pickle and cloudpickle serialization).

Reading unpickles the model, which runs code from the folder: import only models from
sources you trust.
"""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import platform
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from loopml.errors import ConfigError, ModelLoadError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MlflowModel", "read_mlflow_model", "write_mlflow_model"]

_MODEL_FILE = "model.pkl"
_EXAMPLE_FILE = "input_example.json"
_SERVING_EXAMPLE_FILE = "serving_input_example.json"


@dataclass
class MlflowModel:
    """A model read from an MLflow model directory.

    Attributes:
        model: The unpickled scikit-learn model.
        signature: The input columns as ``{"name", "type"}`` in MLflow's type names
            (``long``, ``double``, ``string``, ``boolean``, ...); empty without a signature.
        input_example: The saved input example, when there is one.
        mlflow_version: The MLflow version that saved it (None when loopml wrote it).
        flavors: The names of every flavor in the MLmodel file.
    """

    model: Any
    signature: list[dict[str, str]] = field(default_factory=list)
    input_example: pd.DataFrame | None = None
    mlflow_version: str | None = None
    flavors: list[str] = field(default_factory=list)


def write_mlflow_model(
    model: Any,
    folder: str | Path,
    *,
    input_example: pd.DataFrame | None = None,
    requirements: list[str] | None = None,
) -> Path:
    """Writes ``model`` as an MLflow model directory that ``mlflow.pyfunc`` can serve.

    Args:
        model: A fitted model with ``predict`` (pickled with the standard library).
        folder: A directory that does not exist yet, or is empty.
        input_example: Rows of input; they become the input example and, with the
            model's predictions on them, the signature.
        requirements: pip requirements for ``requirements.txt``; by default ``mlflow``
            (the loader) and pinned versions of scikit-learn, loopml and every package
            the model's steps come from.

    Returns:
        The folder.
    """
    if not callable(getattr(model, "predict", None)):
        raise ValidationError(
            f"Cannot write a {type(model).__name__} as an MLflow model: it has no predict "
            "method. Pass a fitted estimator."
        )
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValidationError(
            f"{folder} already exists and is not an empty directory; choose a new folder."
        )
    folder.mkdir(parents=True, exist_ok=True)

    with open(folder / _MODEL_FILE, "wb") as stream:
        pickle.dump(model, stream, protocol=pickle.DEFAULT_PROTOCOL)
    pins = requirements if requirements is not None else _default_requirements(model)
    (folder / "requirements.txt").write_text("\n".join(pins) + "\n")
    python = platform.python_version()
    pip_pin = _pinned("pip")
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={python}",
            *([pip_pin.replace("==", "<=")] if pip_pin else ["pip"]),
            {"pip": pins},
        ],
        "name": "mlflow-env",
    }
    (folder / "conda.yaml").write_text(yaml.safe_dump(conda, default_flow_style=False))
    python_env = {
        "python": python,
        "build_dependencies": [pip_pin or "pip", _pinned("setuptools") or "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"],
    }
    (folder / "python_env.yaml").write_text(yaml.safe_dump(python_env, sort_keys=False))

    import sklearn

    mlmodel: dict[str, Any] = {
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": _MODEL_FILE,
                "predict_fn": "predict",
                "python_version": python,
            },
            "sklearn": {
                "code": None,
                "pickled_model": _MODEL_FILE,
                "serialization_format": "pickle",
                "sklearn_version": sklearn.__version__,
            },
        },
        "metadata": {"written_by": f"loopml {_version('loopml') or 'unknown'}"},
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    if input_example is not None:
        split = _split_json(input_example)
        (folder / _EXAMPLE_FILE).write_text(json.dumps(split))
        (folder / _SERVING_EXAMPLE_FILE).write_text(
            json.dumps({"dataframe_split": split}, indent=2)
        )
        mlmodel["saved_input_example_info"] = {
            "artifact_path": _EXAMPLE_FILE,
            "pandas_orient": "split",
            "serving_input_path": _SERVING_EXAMPLE_FILE,
            "type": "dataframe",
        }
        mlmodel["signature"] = {
            "inputs": json.dumps(_input_schema(input_example)),
            "outputs": json.dumps(_output_schema(np.asarray(model.predict(input_example)))),
            "params": None,
        }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, default_flow_style=False))
    return folder


def read_mlflow_model(folder: str | Path) -> MlflowModel:
    """Reads a scikit-learn model from an MLflow model directory.

    Raises:
        ValidationError: the folder is not an MLflow model, has no sklearn flavor, or
            uses a serialization loopml does not read (skops).
        ConfigError: the model was saved with cloudpickle, which is not installed.
        ModelLoadError: unpickling failed (a missing package, usually).
    """
    folder = Path(folder)
    mlmodel_path = folder / "MLmodel"
    if not mlmodel_path.is_file():
        raise ValidationError(
            f"{folder} is not an MLflow model: it has no MLmodel file. Pass the directory "
            "that mlflow.sklearn.save_model (or log_model's artifact path) wrote."
        )
    try:
        mlmodel = yaml.safe_load(mlmodel_path.read_text())
    except yaml.YAMLError as error:
        raise ValidationError(f"{mlmodel_path} is not valid YAML: {error}") from error
    if not isinstance(mlmodel, dict):
        raise ValidationError(f"{mlmodel_path} is not an MLmodel file (no flavors mapping).")
    flavors = mlmodel.get("flavors") or {}
    sklearn_flavor = flavors.get("sklearn")
    if not isinstance(sklearn_flavor, dict):
        found = ", ".join(flavors) or "none"
        raise ValidationError(
            f"The MLflow model in {folder} has no sklearn flavor (its flavors: {found}); "
            "loopml imports scikit-learn models saved with mlflow.sklearn."
        )
    model = _unpickle(
        folder / sklearn_flavor.get("pickled_model", _MODEL_FILE),
        sklearn_flavor.get("serialization_format", "cloudpickle"),
    )
    version = mlmodel.get("mlflow_version")
    return MlflowModel(
        model=model,
        signature=_signature_columns(mlmodel.get("signature")),
        input_example=_read_example(folder, mlmodel.get("saved_input_example_info")),
        mlflow_version=None if version is None else str(version),
        flavors=list(flavors),
    )


# -- writing helpers ---------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pinned(distribution: str) -> str | None:
    version = _version(distribution)
    return None if version is None else f"{distribution}=={version}"


def _default_requirements(model: Any) -> list[str]:
    """mlflow (the loader), then pins for scikit-learn, loopml (its preprocessing functions
    are pickled by reference) and each package a step of the model comes from."""
    distributions = importlib.metadata.packages_distributions()
    names = {"scikit-learn", "loopml"}
    for module in _step_modules(model):
        names.update(distributions.get(module, []))
    pins = [_pinned(name) for name in sorted(names)]
    return ["mlflow", *[pin for pin in pins if pin is not None]]


def _step_modules(model: Any) -> set[str]:
    """Top-level modules of the model's class and of every nested step."""
    modules = {type(model).__module__.partition(".")[0]}
    children: list[Any] = []
    if hasattr(model, "steps"):
        children = [step for _, step in model.steps]
    elif hasattr(model, "transformers_"):
        children = [step for _, step, _ in model.transformers_]
    for child in children:
        if not isinstance(child, str) and child is not None:
            modules |= _step_modules(child)
    return modules


def _split_json(frame: pd.DataFrame) -> dict[str, Any]:
    """The frame in pandas' split orient, as MLflow writes examples (NaN stays NaN)."""
    return {
        "columns": [str(name) for name in frame.columns],
        "data": [[_plain(value) for value in row] for row in frame.itertuples(index=False)],
    }


def _plain(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, (float, np.floating)):
        return float(value)  # NaN stays NaN, as MLflow writes it
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _mlflow_type(series: pd.Series) -> str:
    """MLflow's data type name for a column (mlflow.types.DataType)."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    width = np.dtype(dtype).itemsize if isinstance(dtype, np.dtype) else 8  # nullable: 64-bit
    if pd.api.types.is_integer_dtype(dtype):
        return "long" if width == 8 else "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "double" if width == 8 else "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    values = series.dropna()
    if len(values) and all(isinstance(value, bytes) for value in values):
        return "binary"
    return "string"


def _input_schema(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "type": _mlflow_type(frame[name]),
            "name": str(name),
            "required": not frame[name].isna().any(),
        }
        for name in frame.columns
    ]


def _output_schema(predictions: np.ndarray) -> list[dict[str, Any]]:
    if predictions.dtype.kind in "biuf":
        shape = [-1, *predictions.shape[1:]]
        return [
            {"type": "tensor", "tensor-spec": {"dtype": str(predictions.dtype), "shape": shape}}
        ]
    return [{"type": "string", "required": True}]


# -- reading helpers ---------------------------------------------------------------------


def _unpickle(path: Path, serialization_format: str) -> Any:
    if serialization_format == "pickle":
        loader: Any = pickle
    elif serialization_format == "cloudpickle":
        try:
            import cloudpickle
        except ImportError:
            raise ConfigError(
                f"The MLflow model {path.parent} was saved with cloudpickle, which is not "
                "installed; run: pip install cloudpickle."
            ) from None
        loader = cloudpickle
    else:
        raise ValidationError(
            f"The MLflow model {path.parent} is serialized as {serialization_format!r}; "
            "loopml reads 'pickle' and 'cloudpickle'. Re-save it with "
            "mlflow.sklearn.save_model(..., serialization_format='pickle')."
        )
    if not path.is_file():
        raise ValidationError(f"The MLflow model's file {path} is missing.")
    try:
        with open(path, "rb") as stream:
            return loader.load(stream)
    except Exception as error:
        raise ModelLoadError(
            f"Could not unpickle {path}: {error}. Install the packages listed in "
            f"{path.parent / 'requirements.txt'} and try again."
        ) from error


def _signature_columns(signature: Any) -> list[dict[str, str]]:
    """MLflow's input schema (a JSON string) as ``{"name", "type"}`` entries; tensor
    inputs get their element type, as ``tensor<float64>``."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return []
    columns = []
    for index, spec in enumerate(json.loads(signature["inputs"])):
        kind = spec.get("type", "")
        if kind == "tensor":
            kind = f"tensor<{spec.get('tensor-spec', {}).get('dtype', '')}>"
        columns.append({"name": str(spec.get("name", index)), "type": str(kind)})
    return columns


def _read_example(folder: Path, info: Any) -> pd.DataFrame | None:
    import pandas as pd

    if not isinstance(info, dict) or "artifact_path" not in info:
        return None
    path = folder / str(info["artifact_path"])
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "data" in data:  # split orient
        return pd.DataFrame(data["data"], columns=data.get("columns"))
    if isinstance(data, dict) and "inputs" in data:  # tensor examples
        return pd.DataFrame(np.asarray(data["inputs"]))
    return pd.DataFrame(data)
