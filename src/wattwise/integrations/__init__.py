"""Integrations with training frameworks: callbacks that record into the current run.

* ``wattwise.integrations.lightning.WattwiseCallback``: PyTorch Lightning.
* ``wattwise.integrations.transformers.WattwiseCallback``: Hugging Face ``Trainer``.
* ``wattwise.integrations.keras.WattwiseCallback``: Keras 3 (any backend).
* ``wattwise.integrations.mlflow``: live logging into the active MLflow run.
* ``wattwise.integrations.flops.count_flops``: FLOPs via ``torch.utils.flop_counter``.

Import the submodule you need; this package imports no framework itself.
"""

from __future__ import annotations

__all__: list[str] = []
