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
    # on a machine with SLURM's tools (the slurm tests') Lightning asks for srun
    pytest.mark.filterwarnings("ignore:.*The `srun` command is available.*"),
]


@pytest.fixture
def model_meters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs the callbacks start measure with the model meters, which every machine has:
    DRAM's is a constant power, so even a run of a few milliseconds has energy > 0."""
    monkeypatch.setenv("WATTWISE_METERS", "cpu-model,dram-model")


class Tiny(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, fail_at: int | None = None, fail_in: str = "training") -> None:
        super().__init__()
        self.save_hyperparameters({"lr": 0.1})
        self.layer = torch.nn.Linear(8, 2)
        self.fail_at = fail_at
        self.fail_in = fail_in
        self.raised: list[BaseException] = []
        self.losses: dict[int, list[float]] = {}  # per epoch, as computed

    def _maybe_fail(self, where: str, batch_idx: int) -> None:
        if where == self.fail_in and batch_idx == self.fail_at:
            err = RuntimeError(f"boom in {where} at batch {batch_idx}")
            self.raised.append(err)
            raise err

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self._maybe_fail("training", batch_idx)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.losses.setdefault(self.current_epoch, []).append(loss.detach().item())
        self.log("train_mse", loss)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.log("wattwise/energy_j", 123.0)  # a user's name in our namespace
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._maybe_fail("validation", batch_idx)
        x, y = batch
        self.log("val_mse", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n: int = 64) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 8), torch.randn(n, 2)), batch_size=16)


def _trainer(callback: Any, epochs: int = 1) -> Any:
    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[callback] if callback is not None else [],
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
    assert {"train_loss_step", "train_mse", "val_mse", "wattwise/epoch"} <= keys


def test_each_metric_once_per_step_fresh_values_and_energy_per_step_and_epoch() -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    meter = FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)
    module = Tiny()
    with wattwise.track("fit2", meters=[meter], interval_s=0.05) as run:
        # 2 epochs of 4 batches; the callback logs every 2nd step
        _trainer(WattwiseCallback(log_every_n_steps=2), epochs=2).fit(
            module, _loader(), _loader(32))
    points = open_store().metrics(run.id)
    pairs = [(step, key) for step, key, _v, _t in points]
    assert len(pairs) == len(set(pairs))  # no metric twice at one step
    series: dict[str, dict[int, float]] = {}
    for step, key, value, _t in points:
        series.setdefault(key, {})[step] = value
    # the epoch means at the epoch's last step, each its own epoch's (none repeated later)
    assert sorted(series["train_loss_epoch"]) == [4, 8]
    for epoch, step in ((0, 4), (1, 8)):
        mean = sum(module.losses[epoch]) / 4
        assert series["train_loss_epoch"][step] == pytest.approx(mean, rel=1e-5)
    assert series["train_loss_epoch"][4] != series["train_loss_epoch"][8]
    assert sorted(series["val_mse"]) == [4, 8]
    assert sorted(series["train_loss_step"]) == [2, 4, 6, 8]
    # the user's "wattwise/energy_j" is theirs, renamed; ours are the energy so far
    assert set(series["wattwise_energy_j"].values()) == {123.0}
    energy = series["wattwise/energy_j"]
    assert sorted(energy) == [2, 4, 6, 8]
    assert [energy[s] for s in (2, 4, 6, 8)] == sorted(energy.values()) and energy[2] > 0
    assert all(v > 0 for v in series["wattwise/step_energy_j"].values())
    assert sorted(series["wattwise/epoch_energy_j"]) == [4, 8]
    assert series["wattwise/epoch"] == {4: 0.0, 8: 1.0}
    epochs_j = sum(series["wattwise/epoch_energy_j"].values())
    assert 0 < epochs_j <= run.result.energy_j
    assert series["wattwise/epoch_energy_j"][4] + energy[2] > energy[4] * 0.5  # same scale
    assert set(series["wattwise/co2e_g"]) == {2, 4, 6, 8}


def test_callback_starts_and_finishes_a_run_when_there_is_none() -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    callback = WattwiseCallback(name="own-fit", flops_every_n_steps=2)
    _trainer(callback).fit(Tiny(), _loader(), _loader(16))
    (run,) = open_store().list_runs()
    assert run.name == "own-fit" and run.status is RunStatus.FINISHED
    assert run.params == {"lr": 0.1} and run.tags == ["lightning"]
    flops = run.record["flops"]
    assert flops["flops_total"] == 4096 and "2 of 4 steps measured" in flops["extrapolation"]


@pytest.mark.usefixtures("model_meters")
@pytest.mark.parametrize(("fail_in", "steps"), [("training", 1), ("validation", 4)])
def test_a_failing_fit_ends_the_callback_run_failed_at_once(fail_in: str, steps: int) -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    callback = WattwiseCallback(name="bad-fit")
    module = Tiny(fail_at=1, fail_in=fail_in)
    with pytest.raises(RuntimeError) as caught:
        _trainer(callback).fit(module, _loader(), _loader(32))
    assert caught.value is module.raised[0]  # the user's own exception, unchanged
    # Lightning's on_exception: the run has ended already (the process lives on), failed,
    # with its energy, the steps trained before the failure and the error
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.FAILED and run.ended_at is not None and run.energy_j > 0
    assert run.record["error"] == f"RuntimeError: boom in {fail_in} at batch 1"
    assert run.record["flops"]["steps"] == steps
    assert wattwise.tracking.current_run() is None
    # a later fit with the same callback, nothing failing now, is a run of its own
    module.fail_at = None
    module.train()  # Lightning leaves it in eval mode when validation raised
    _trainer(callback).fit(module, _loader(), _loader(32))
    (again,) = [r for r in open_store().list_runs() if r.id != run.id]
    assert again.status is RunStatus.FINISHED and again.record["flops"]["steps"] == 4
    assert open_store().get_run(run.id).status is RunStatus.FAILED


def test_the_callback_changes_nothing_in_a_fit_that_succeeds() -> None:
    from wattwise.integrations.lightning import WattwiseCallback

    torch.manual_seed(0)
    plain = Tiny()
    _trainer(None, epochs=2).fit(plain, _loader(), _loader(32))
    torch.manual_seed(0)
    watched = Tiny()
    _trainer(WattwiseCallback(name="same-fit"), epochs=2).fit(watched, _loader(), _loader(32))
    assert watched.losses == plain.losses  # every step's loss, as computed
    mine, theirs = watched.state_dict(), plain.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.FINISHED
