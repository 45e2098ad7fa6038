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
    # the energy at each logged step, once per step; per step since the last log
    pairs = [(step, key) for step, key, _v, _t in metrics]
    assert len(pairs) == len(set(pairs))
    energy = {step: v for step, key, v, _t in metrics if key == "wattwise/energy_j"}
    assert sorted(energy) == [1, 2, 3] and 0 < energy[1] < energy[2] < energy[3]
    assert energy[3] <= run.result.energy_j
    per_step = {step: v for step, key, v, _t in metrics if key == "wattwise/step_energy_j"}
    assert sorted(per_step) == [1, 2, 3] and all(v > 0 for v in per_step.values())
    assert {"wattwise/co2e_g", "wattwise/power_w"} <= {key for _s, key, _v, _t in metrics}


def test_trainer_callback_starts_its_own_run(tmp_path: Path) -> None:
    from wattwise.integrations.transformers import WattwiseCallback

    _trainer(tmp_path, WattwiseCallback(name="hf-own"), max_steps=2).train()
    (run,) = open_store().list_runs()
    assert run.name == "hf-own" and run.status is RunStatus.FINISHED
    assert run.params["per_device_train_batch_size"] == 4 and run.tags == ["transformers"]
    assert run.record["flops"]["steps"] == 2


class Diverges(RandomTokens):
    """Fine for 12 steps' worth of examples (batch 4), then the data pipeline blows up."""

    def __init__(self) -> None:
        self.served = 0

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.served += 1
        if self.served > 48:
            msg = "loss is nan at step 13"
            raise FloatingPointError(msg)
        return super().__getitem__(i)


def test_train_that_raises_ends_the_callback_run_failed_at_once(tmp_path: Path) -> None:
    from wattwise.integrations.transformers import WattwiseCallback

    trainer = _trainer(tmp_path, WattwiseCallback(name="hf-nan"), max_steps=50)
    trainer.train_dataset = Diverges()
    with pytest.raises(FloatingPointError, match="loss is nan at step 13"):  # unchanged
        trainer.train()
    # the process lives on (a notebook): the run has ended already, failed, with its energy
    (run,) = open_store().list_runs()
    assert run.name == "hf-nan" and run.status is RunStatus.FAILED
    assert run.energy_j > 0 and run.ended_at is not None
    assert run.record["error"] == "FloatingPointError: loss is nan at step 13"
    assert run.record["flops"]["steps"] == 12
    assert wattwise.tracking.current_run() is None


def test_create_model_card_writes_co2_eq_emissions(tmp_path: Path, monkeypatch: Any) -> None:
    import yaml

    from wattwise.integrations.transformers import WattwiseCallback

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    meter = FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)
    with wattwise.track("card", meters=[meter], interval_s=0.05, region="FR") as run:
        trainer = _trainer(tmp_path, WattwiseCallback(), max_steps=2)
        trainer.train()
    trainer.create_model_card(model_name="tiny-bert", language="en")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---")[1])
    block = meta["co2_eq_emissions"]
    assert block["emissions"] == pytest.approx(run.result.co2e_g, rel=1e-5)
    assert block["training_type"] == "fine-tuning"
    assert block["geographical_location"] == run.location.display_name
    assert "cpu model (fake)" in block["source"] and run.intensity.dataset in block["source"]
    assert meta["language"] == ["en"] and "tiny-bert" in text  # the Trainer's card is kept
    assert "e-0" not in text.split("---")[1]  # fixed-point, as the Hub reads it


def test_fixed_point_emissions() -> None:
    from wattwise.integrations._card import fixed

    assert fixed(4.51359e-06) == "0.00000451359" and fixed(412.3) == "412.3"
    assert fixed(0.0) == "0.0" and fixed(1234567.0) == "1234567.0"
    assert float(fixed(1.23456789e-9)) == pytest.approx(1.23457e-9)


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


@pytest.mark.slow  # a fresh interpreter imports torch and transformers
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
