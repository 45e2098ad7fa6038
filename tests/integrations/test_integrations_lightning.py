from __future__ import annotations

from typing import Any

import pytest

import wattwise
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
pl = pytest.importorskip(
    "lightning.pytorch", reason="Lightning is not installed (pip install 'wattwise[integrations]')"
)

pytestmark = [
    pytest.mark.torch,
    # Lightning 2.6 on torch 2.13 warns about its own use of torch's pytree
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
]


class Tiny(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"lr": 0.1})
        self.layer = torch.nn.Linear(8, 2)
        self.fail_at = fail_at

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if batch_idx == self.fail_at:
            msg = "boom"
            raise RuntimeError(msg)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_mse", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n: int = 64) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 8), torch.randn(n, 2)), batch_size=16)


def _trainer(callback: Any) -> Any:
    return pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
        log_every_n_steps=1, num_sanity_val_steps=0,
    )  # fmt: skip


def test_callback_records_flops_samples_and_metrics_into_the_current_run() -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    meter = FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)
    with wattwise.track("fit", meters=[meter], interval_s=0.05) as run:
        _trainer(WattwiseCallback()).fit(Tiny(), _loader(), _loader(32))
    flops = open_store().get_run(run.id).record["flops"]
    # Linear(8, 2), batch 16: forward 2*16*8*2 = 512; weight grad 512 (no input grad) -> 1024
    assert flops["flops_per_step"] == 1024 and flops["steps"] == 4
    assert flops["flops_total"] == 4096 and flops["samples_total"] == 64
    assert flops["source"] == "lightning" and flops["passes"] == "forward+backward"
    keys = {key for _s, key, _v, _t in open_store().metrics(run.id)}
    assert {"train_loss", "train_mse", "val_mse", "epoch"} <= keys


def test_callback_starts_and_finishes_a_run_when_there_is_none() -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    callback = WattwiseCallback(name="own-fit", flops_every_n_steps=2)
    _trainer(callback).fit(Tiny(), _loader(), _loader(16))
    (run,) = open_store().list_runs()
    assert run.name == "own-fit" and run.status is RunStatus.FINISHED
    assert run.params == {"lr": 0.1} and run.tags == ["lightning"]
    flops = run.record["flops"]
    assert flops["flops_total"] == 4096 and "2 of 4 steps measured" in flops["extrapolation"]


def test_a_failing_fit_marks_the_callback_run_failed() -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    with pytest.raises(RuntimeError, match="boom"):
        _trainer(WattwiseCallback(name="bad-fit")).fit(Tiny(fail_at=2), _loader(), _loader(16))
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.FAILED and "boom" in run.record["error"]
    assert run.record["flops"]["steps"] == 2
