from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (pip install 'wattwise[integrations]')"
)
pytest.importorskip(
    "accelerate", reason="Trainer needs accelerate>=1.1 (pip install 'transformers[torch]')"
)

pytestmark = pytest.mark.torch


class RandomTokens(torch.utils.data.Dataset):  # type: ignore[misc]
    """24 random sequences of 12 token ids, labels alternate: no download."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 64, (12,), generator=g),
                "attention_mask": torch.ones(12, dtype=torch.long), "labels": torch.tensor(i % 2)}


def _trainer(tmp_path: Path, callback: Any, max_steps: int = 3) -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=max_steps,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
        seed=0,
    )  # fmt: skip
    return transformers.Trainer(model=model, args=args, train_dataset=RandomTokens(),
                                callbacks=[callback])  # fmt: skip


def test_trainer_callback_records_flops_samples_and_logs(tmp_path: Path) -> None:
    from wattwise.integrations.transformers import WattwiseCallback

    meter = FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)
    with wattwise.track("finetune", meters=[meter], interval_s=0.05) as run:
        _trainer(tmp_path, WattwiseCallback()).train()
    flops = open_store().get_run(run.id).record["flops"]
    assert flops["steps"] == 3 and flops["samples_total"] == 12  # 3 steps x batch 4
    assert flops["flops_per_step"] > 0 and flops["flops_total"] == 3 * flops["flops_per_step"]
    # the profiler's count and the Trainer's 6·N·tokens estimate agree within a factor of 2
    assert 0.5 < flops["flops_total"] / flops["trainer_total_flos"] < 2
    assert flops["source"] == "transformers" and flops["framework"].startswith("transformers")
    metrics = open_store().metrics(run.id)
    losses = [(step, v) for step, key, v, _t in metrics if key == "loss"]
    assert [s for s, _ in losses] == [1, 2, 3] and all(v > 0 for _, v in losses)
    assert {"learning_rate", "train_loss"} <= {key for _s, key, _v, _t in metrics}


def test_trainer_callback_starts_its_own_run(tmp_path: Path) -> None:
    from wattwise.integrations.transformers import WattwiseCallback

    _trainer(tmp_path, WattwiseCallback(name="hf-own"), max_steps=2).train()
    (run,) = open_store().list_runs()
    assert run.name == "hf-own" and run.status is RunStatus.FINISHED
    assert run.params["per_device_train_batch_size"] == 4 and run.tags == ["transformers"]
    assert run.record["flops"]["steps"] == 2


RAISING_TRAINER = '''
import sys
import torch, transformers
sys.path.insert(0, {tests!r})
from test_integrations_transformers import RandomTokens
from wattwise.integrations.transformers import WattwiseCallback


class Diverges(RandomTokens):
    """Fine for 12 steps' worth of examples, then the data pipeline blows up."""

    served = 0

    def __getitem__(self, i):
        Diverges.served += 1
        if Diverges.served > 48:
            raise FloatingPointError("loss is nan at step 13")
        return super().__getitem__(i)


torch.manual_seed(0)
config = transformers.BertConfig(
    vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=32, num_labels=2)
args = transformers.TrainingArguments(
    output_dir={out!r}, per_device_train_batch_size=4, max_steps=50, logging_steps=1,
    report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
model = transformers.BertForSequenceClassification(config)
trainer = transformers.Trainer(model=model, args=args, train_dataset=Diverges(),
                               callbacks=[WattwiseCallback(name="hf-diverges")])
trainer.train()
'''


def test_a_trainer_that_raises_keeps_its_energy(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = tmp_path / "diverges.py"
    script.write_text(RAISING_TRAINER.format(tests=str(Path(__file__).parent),
                                             out=str(tmp_path / "out")))  # fmt: skip
    env = {**os.environ, "WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 1 and "loss is nan at step 13" in done.stderr  # its own error
    (run,) = open_store().list_runs()
    assert run.name == "hf-diverges"
    assert run.status is RunStatus.FAILED  # not crashed, not 0 J
    assert run.energy_j > 0 and run.duration_s > 0.1
    assert "FloatingPointError: loss is nan at step 13" in run.record["error"]
    assert len([m for m in open_store().metrics(run.id) if m[1] == "loss"]) >= 2
