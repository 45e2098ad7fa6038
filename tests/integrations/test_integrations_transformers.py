from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from failure_support import Failing, ended_failed, innermost

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


@pytest.fixture
def model_meters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs the callbacks start measure with the model meters, which every machine has:
    DRAM's is a constant power, so even a run of a few milliseconds has energy > 0."""
    monkeypatch.setenv("WATTWISE_METERS", "cpu-model,dram-model")


class RandomTokens(torch.utils.data.Dataset):  # type: ignore[misc]
    """24 random sequences of 12 token ids, labels alternate: no download."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 64, (12,), generator=g),
                "attention_mask": torch.ones(12, dtype=torch.long), "labels": torch.tensor(i % 2)}


def _trainer(tmp_path: Path, callback: Any, max_steps: int = 3, *, add: bool = False,
             trainer_kwargs: dict[str, Any] | None = None, **arguments: Any) -> Any:  # fmt: skip
    """A tiny BERT built from its config; the callback given to ``Trainer(callbacks=...)``,
    or with ``add=True`` added later by ``trainer.add_callback``."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(**{
        "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4,
        "max_steps": max_steps, "logging_steps": 1, "report_to": [], "save_strategy": "no",
        "use_cpu": True, "disable_tqdm": True, "seed": 0, **arguments,
    })  # fmt: skip
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=RandomTokens(),
        callbacks=[callback] if callback is not None and not add else None,
        **(trainer_kwargs or {}),
    )  # fmt: skip
    if add:
        trainer.add_callback(callback)
    return trainer


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
    run = ended_failed("hf-nan")
    assert run.record["error"] == "FloatingPointError: loss is nan at step 13"
    assert run.record["flops"]["steps"] == 12


class FailingTokens(RandomTokens):
    def __init__(self, failing: Failing) -> None:
        self.failing = failing

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.failing.maybe_raise()
        return super().__getitem__(i)


def _loss(failing: Failing) -> Any:
    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        failing.maybe_raise()
        return torch.nn.functional.cross_entropy(outputs.logits, labels)

    return loss


class RaisesAtStepEnd(transformers.TrainerCallback):  # type: ignore[misc]
    def __init__(self, failing: Failing) -> None:
        self.failing = failing

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.failing.maybe_raise()


def _watched_names(trainer: Any) -> set[str]:
    """What wattwise wrapped on the Trainer for one train() and has not put back."""
    from wattwise.integrations.transformers import FAILURE_PATHS

    names = {name for group in FAILURE_PATHS for name in group}
    left = names & set(vars(trainer))
    return left | ({"call_event"} & set(vars(trainer.callback_handler)))


def _failing_trainer(tmp_path: Path, where: str, *, add: bool) -> tuple[Any, Failing]:
    from wattwise.integrations.transformers import WattwiseCallback

    callback = WattwiseCallback(name=f"hf-{where}")
    if where == "data":  # 4 examples a step: the 23rd is read in step 6
        failing = Failing(23, "the data")
        trainer = _trainer(tmp_path, callback, max_steps=8, add=add)
        trainer.train_dataset = FailingTokens(failing)
    elif where == "loss":  # the user's loss function, in step 5's forward pass
        failing = Failing(5, "the loss")
        trainer = _trainer(tmp_path, callback, max_steps=8, add=add,
                           trainer_kwargs={"compute_loss_func": _loss(failing)})  # fmt: skip
    elif where == "eval":  # the metrics of the evaluation at step 4
        failing = Failing(2, "compute_metrics")

        def metrics(prediction: Any) -> dict[str, float]:
            failing.maybe_raise()
            return {"n": float(len(prediction.label_ids))}

        trainer = _trainer(
            tmp_path, callback, max_steps=8, add=add, eval_strategy="steps", eval_steps=2,
            trainer_kwargs={"eval_dataset": RandomTokens(), "compute_metrics": metrics},
        )  # fmt: skip
    else:  # another callback, at the end of step 3
        failing = Failing(3, "a callback")
        trainer = _trainer(tmp_path, callback, max_steps=8, add=add)
        trainer.add_callback(RaisesAtStepEnd(failing))
    return trainer, failing


@pytest.mark.usefixtures("model_meters")
@pytest.mark.parametrize(
    ("where", "add"),
    [("data", True), ("loss", True), ("eval", True), ("callback", True), ("loss", False)],
)
def test_a_failure_anywhere_in_train_ends_the_run_failed_at_once(
    tmp_path: Path, where: str, add: bool
) -> None:
    trainer, failing = _failing_trainer(tmp_path, where, add=add)
    with pytest.raises(FloatingPointError) as caught:
        trainer.train()
    # the user's own exception, unchanged: the same object, raised where the user raised it
    assert caught.value is failing.raised[0] and innermost(caught.value) == "maybe_raise"
    # the process lives on (a notebook): the run has ended already, failed, with its energy
    run = ended_failed(f"hf-{where}")
    assert run.record["error"] == f"FloatingPointError: {failing.message}"
    assert _watched_names(trainer) == set()  # the Trainer's methods are its own again
    # the next train() of the same Trainer, nothing failing now, is a run of its own
    failing.armed = False
    out = trainer.train()
    assert out.global_step == 8
    (again,) = [r for r in open_store().list_runs() if r.id != run.id]
    assert again.name == f"hf-{where}" and again.status is RunStatus.FINISHED
    assert again.record["flops"]["steps"] == 8 and "error" not in again.record
    assert open_store().get_run(run.id).status is RunStatus.FAILED  # the failure stays
    assert _watched_names(trainer) == set()


@pytest.mark.usefixtures("model_meters")
@pytest.mark.parametrize("where", ["data", "eval"])
def test_the_older_trainers_failure_paths_see_it_too(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Trainer without ``_run_epoch`` (the loop inline) gets the second group wrapped:
    here the installed Trainer's own methods of those names."""
    from wattwise.integrations import transformers as integration

    monkeypatch.setattr(integration, "FAILURE_PATHS", integration.FAILURE_PATHS[1:])
    trainer, failing = _failing_trainer(tmp_path, where, add=True)
    with pytest.raises(FloatingPointError) as caught:
        trainer.train()
    assert caught.value is failing.raised[0]
    run = ended_failed(f"hf-{where}")
    assert failing.message in run.record["error"] and _watched_names(trainer) == set()


def test_the_callback_changes_nothing_in_a_training_that_succeeds(tmp_path: Path) -> None:
    from wattwise.integrations.transformers import WattwiseCallback

    plain = _trainer(tmp_path / "plain", None, max_steps=4)
    expected = plain.train()
    watched = _trainer(tmp_path / "watched", WattwiseCallback(name="hf-same"), max_steps=4,
                       add=True)  # fmt: skip
    got = watched.train()
    assert got.training_loss == expected.training_loss and got.global_step == 4
    mine, theirs = watched.model.state_dict(), plain.model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)  # bit for bit
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.FINISHED and _watched_names(watched) == set()


class RaisesAtTrainBegin(transformers.TrainerCallback):  # type: ignore[misc]
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        msg = "bad setup"
        raise ValueError(msg)


@pytest.mark.usefixtures("model_meters")
@pytest.mark.parametrize("add", [False, True])
def test_a_failure_no_wrapper_sees(tmp_path: Path, add: bool) -> None:
    """Another callback's on_train_begin, after ours: seen by train()'s wrapper when the
    callback came in callbacks=[...]; with add_callback, at the next train() at the latest."""
    from wattwise.integrations.transformers import UNSEEN, WattwiseCallback

    trainer = _trainer(tmp_path, WattwiseCallback(name="hf-setup"), max_steps=2, add=add)
    trainer.add_callback(RaisesAtTrainBegin())
    with pytest.raises(ValueError, match="bad setup"):
        trainer.train()
    (run,) = open_store().list_runs()
    if not add:
        assert run.status is RunStatus.FAILED and run.record["error"] == "ValueError: bad setup"
        assert run.energy_j > 0
        return
    assert run.status is RunStatus.RUNNING  # not seen: open (to the exit, or until...)
    trainer.pop_callback(RaisesAtTrainBegin)
    trainer.train()  # ... the next train(), which ends it failed and starts its own
    first = open_store().get_run(run.id)
    assert first.status is RunStatus.FAILED and first.record["error"] == UNSEEN
    assert first.energy_j > 0
    statuses = sorted(r.status.value for r in open_store().list_runs())
    assert statuses == ["failed", "finished"]


def test_an_out_of_memory_that_auto_find_batch_size_retries_is_no_failure(
    tmp_path: Path,
) -> None:
    from wattwise.integrations.transformers import WattwiseCallback

    batches: list[int] = []

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        batches.append(int(labels.shape[0]))
        if len(batches) == 1:  # the first step, FLOPs being counted: as a CPU's OOM says it
            msg = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes."
            raise RuntimeError(msg)
        return torch.nn.functional.cross_entropy(outputs.logits, labels)

    trainer = _trainer(
        tmp_path, WattwiseCallback(name="hf-oom"), max_steps=3, add=True,
        auto_find_batch_size=True, per_device_train_batch_size=8,
        trainer_kwargs={"compute_loss_func": loss},
    )  # fmt: skip
    out = trainer.train()  # the Trainer retried with a smaller batch and went on
    assert out.global_step == 3 and batches[0] == 8 and batches[-1] < 8
    (run,) = open_store().list_runs()  # one training, one run
    assert run.status is RunStatus.FINISHED and "error" not in run.record
    assert run.record["flops"]["steps"] == 3 and run.record["flops"]["flops_per_step"] > 0
    assert _watched_names(trainer) == set()


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
