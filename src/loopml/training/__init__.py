"""Training: ``ws.train(model, data=..., target=...)`` fits a model and tracks the run.

    TrainResult     the run, the fitted model and its metrics
    TrainingError   fitting raised; the run ended FAILED (``.run_id``)
    TrainConfig     a ``train.yaml`` file read and checked (``loopml train --config``)
    tune            ``ws.tune(...)``: a hyperparameter search on Optuna, local or on Ray
    TuneResult      the parent run, the best params, metrics and model, every trial

Preprocessing (``loopml.training._preprocess``), splits and checks (``_data``),
cross-validation (``_cross_validation``) and metrics (``_metrics``) are internal.
"""

from __future__ import annotations

from loopml.training.config import TrainConfig, load_train_config
from loopml.training.search import TuneResult, tune
from loopml.training.trainer import Trainer, TrainingError, TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "TuneResult",
    "load_train_config",
    "train",
    "tune",
]
