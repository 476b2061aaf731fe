"""More than one process, and mixed precision: Lightning's own options, checked on the zoo's models.

DDP: a real ``strategy="ddp"`` run, two CPU processes over gloo, against one process
trained over the same global batch. Lightning's DDP launcher starts the second process
by running the script again, so the run is a script file in a subprocess.

Mixed precision: ``bf16-mixed`` on the CPU for every cell (the fused kernels and our
loop), through a Trainer and through ``zoo fit``; ``16-mixed`` (fp16 with a GradScaler)
exists on GPUs only in Lightning, so those cases run where CUDA does, and the scaler's
interplay with our non-finite policy is checked on the CPU with the same plugin.
"""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader, TensorDataset

import zoo.app.cli
from tasks.adding import AddingProblem, make_adding
from zoo.diagnostics import default_diagnostics
from zoo.models.rnn import RNNBackbone, RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
TWO_GPUS = CUDA and torch.cuda.device_count() >= 2

# ----------------------------------------------------------------- DDP against one process

# Both runs start from the same weights (seed 0; DDP also broadcasts rank 0's) and see
# the same global batches, so they differ only in the order of float32 sums: a batch
# mean of 8 against the mean of two means of 4, all-reduced. Measured here: 7.5e-8 at
# most on the weights after 6 Adam steps. Adam (lr 1e-2) moves a weight by up to ~1e-2
# a step, so the tolerance is far below any step that differs (one skipped, one left
# unclipped, one batch read twice) and far above the rounding.
WEIGHTS_TOL = dict(rtol=1e-4, atol=1e-5)
NUMBERS_TOL = dict(rel=1e-5, abs=1e-6)  # losses, gradient norms, validation metrics: float32 means of a few numbers
STEPS, GLOBAL_BATCH, CLIP = 6, 8, 1.0
NAN_POSITION = 3 * GLOBAL_BATCH + 1  # the 2nd sample of global batch 3, which DDP deals to rank 1

SCRIPT = textwrap.dedent('''
    """Train a SequenceModel a few steps on 1 or 2 processes; each rank writes what it saw and did to OUT."""
    import zoo  # noqa: F401  (first, as in every entry point)

    import json
    import sys
    from pathlib import Path

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from tasks.adding import AddingProblem, make_adding
    from zoo import OptimConfig, RNNConfig, SequenceModel
    from zoo.diagnostics import ConvergenceMonitor, default_diagnostics, summarize

    cfg = json.loads(sys.argv[1])
    out, devices, steps, global_batch = Path(cfg["out"]), cfg["devices"], cfg["steps"], cfg["global_batch"]
    SEED, SEQ_LEN, N_VAL = 0, 20, 16
    N_TRAIN = steps * global_batch


    def lightning_order():
        """The order in which Lightning's DistributedSampler deals the training set out in epoch 0.

        Lightning always shuffles a training loader's DistributedSampler, seeded with the
        run's seed, and deals position k of this order to rank k % world_size. The single
        process reads the same order, so its batch k is the union of the ranks' batches k.
        """
        return list(DistributedSampler(range(N_TRAIN), num_replicas=1, rank=0, shuffle=True, seed=SEED))


    class FixedData(L.LightningDataModule):
        def __init__(self):
            super().__init__()
            x, y = make_adding(N_TRAIN + N_VAL, SEQ_LEN, torch.Generator().manual_seed(1234))
            for position in cfg["nan_positions"]:  # a NaN input in the sample dealt out at this position
                x[lightning_order()[position], 0, 0] = float("nan")
            self.train, self.val = TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])

        def train_dataloader(self):
            if devices > 1:  # a plain loader: Lightning puts in the DistributedSampler
                return DataLoader(self.train, batch_size=global_batch // devices, shuffle=False)
            sampler = DistributedSampler(self.train, num_replicas=1, rank=0, shuffle=True, seed=SEED)
            return DataLoader(self.train, batch_size=global_batch, sampler=sampler)

        def val_dataloader(self):
            return DataLoader(self.val, batch_size=4)


    class Record(L.Callback):
        """Per step: this rank's targets, whether they held a NaN, its own loss, the logged loss, gradient norms."""

        def __init__(self):
            self.steps, self._clipped = [], None

        def on_train_start(self, trainer, pl_module):
            # After the optimizer step the gradients are the ones it used: all-reduced, then clipped.
            trainer.optimizers[0].register_step_post_hook(lambda *_: setattr(self, "_clipped", self._norm(pl_module)))

        @staticmethod
        def _norm(module):
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            norms = list(pl_module.grad_norms.values())
            logged = trainer.callback_metrics.get("train_loss")
            self.steps.append({
                "targets": batch[1].tolist(),
                "nan_input": bool(torch.isnan(batch[0]).any()),
                "local_loss": float(outputs["loss"]) if outputs else None,
                "logged_loss": float(logged) if outputs and logged is not None else None,
                "skipped": pl_module.skipped_steps,
                "grad_norm": float(torch.linalg.vector_norm(torch.stack(norms))) if norms else None,
                "clipped_norm": self._clipped,
            })
            self._clipped = None


    L.seed_everything(SEED)
    model = SequenceModel(AddingProblem(seq_len=SEQ_LEN).task_spec, RNNConfig(cell="lstm", hidden_size=16),
                          OptimConfig(name="adam", lr=1e-2), nonfinite="skip")
    record = Record()
    diagnostics = default_diagnostics(model.task, every_n_steps=2)
    trainer = L.Trainer(accelerator=cfg["accelerator"], devices=devices, strategy="ddp" if devices > 1 else "auto",
                        max_steps=steps, gradient_clip_val=cfg["clip"], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[record, *diagnostics])
    trainer.fit(model, datamodule=FixedData())
    convergence = next(c for c in diagnostics if isinstance(c, ConvergenceMonitor))
    result = {
        "world_size": trainer.world_size,
        "global_step": trainer.global_step,
        "skipped_steps": model.skipped_steps,
        "steps": record.steps,
        "val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")},
        "diagnostics": summarize(diagnostics, model),
        "samples": convergence.samples,
    }
    if trainer.global_rank == 0:
        torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, out / "weights.pt")
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))
''')

# A parent's distributed settings would make the script join (or imitate) another job.
DIST_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "RANK", "WORLD_SIZE", "GROUP_RANK",
             "LOCAL_WORLD_SIZE")
DIST_PREFIXES = ("SLURM_", "TORCHELASTIC_", "PL_")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS and not k.startswith(DIST_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _train(tmp_path: Path, name: str, **cfg) -> subprocess.Popen:
    """Start the script in its own folder; ``_results`` waits for it."""
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "train_ddp.py"
    if not script.exists():
        script.write_text(SCRIPT)
    cfg = {"out": str(out), "steps": STEPS, "global_batch": GLOBAL_BATCH, "clip": CLIP,
           "nan_positions": [NAN_POSITION], **cfg}
    with open(out / "log.txt", "w") as log:  # the process keeps its own handle
        # A session of its own, so that a timeout ends the processes Lightning started too.
        return subprocess.Popen([sys.executable, str(script), json.dumps(cfg)], cwd=out, env=_env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _results(tmp_path: Path, name: str, process: subprocess.Popen, ranks: int) -> list[dict]:
    try:
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log = (tmp_path / name / "log.txt").read_text()
    assert process.returncode == 0, log[-4000:]
    return [json.loads((tmp_path / name / f"rank{r}.json").read_text()) for r in range(ranks)]


@pytest.mark.parametrize("accelerator", ["cpu", pytest.param("gpu", marks=pytest.mark.skipif(
    not TWO_GPUS, reason="DDP over GPUs needs two of them"))])
def test_ddp_matches_one_process_over_the_same_global_batch(tmp_path, accelerator):
    """2 processes with batch 4 each end where 1 process with batch 8 does: weights, losses, clipping, skips, metrics."""
    started = time.perf_counter()
    # Both at once: each spends most of its start-up importing, and the DDP pair waits on itself.
    ddp_process = _train(tmp_path, "ddp", devices=2, accelerator=accelerator)
    one_process = _train(tmp_path, "one", devices=1, accelerator=accelerator)
    rank0, rank1 = _results(tmp_path, "ddp", ddp_process, 2)
    (one,) = _results(tmp_path, "one", one_process, 1)
    seconds = time.perf_counter() - started
    assert (rank0["world_size"], rank1["world_size"], one["world_size"]) == (2, 2, 1)
    assert rank0["global_step"] == rank1["global_step"] == one["global_step"] == STEPS

    # The premise: at every step the two ranks' batches together are the single process's batch, in order.
    for step, (a, b, single) in enumerate(zip(rank0["steps"], rank1["steps"], one["steps"], strict=True)):
        assert [t for pair in zip(a["targets"], b["targets"]) for t in pair] == single["targets"], step

    # The NaN sample reaches rank 1 alone, at step 3; both ranks drop that update, as the single process does.
    bad = NAN_POSITION // GLOBAL_BATCH
    assert [s["nan_input"] for s in rank1["steps"]] == [step == bad for step in range(STEPS)]
    assert not any(s["nan_input"] for s in rank0["steps"]) and one["steps"][bad]["nan_input"]
    assert rank0["skipped_steps"] == rank1["skipped_steps"] == one["skipped_steps"] == 1
    for run in (rank0, rank1, one):
        assert [s["skipped"] for s in run["steps"]] == [int(step >= bad) for step in range(STEPS)]
        assert run["steps"][bad]["grad_norm"] is None and run["steps"][bad]["clipped_norm"] is None
    updates = [step for step in range(STEPS) if step != bad]

    # Losses: the mean of the ranks' own losses, and the loss both log, are the global batch's.
    for step in updates:
        a, b, single = rank0["steps"][step], rank1["steps"][step], one["steps"][step]
        assert (a["local_loss"] + b["local_loss"]) / 2 == pytest.approx(single["local_loss"], **NUMBERS_TOL), step
        assert a["logged_loss"] == b["logged_loss"] == pytest.approx(single["logged_loss"], **NUMBERS_TOL), step

    # Clipping acts after the gradient all-reduce: the same norm before clipping on both ranks and
    # in the single process, above the threshold at every update, and clipped to it.
    for step in updates:
        a, b, single = rank0["steps"][step], rank1["steps"][step], one["steps"][step]
        assert a["grad_norm"] == b["grad_norm"] == pytest.approx(single["grad_norm"], **NUMBERS_TOL), step
        assert single["grad_norm"] > CLIP, "clipping must act at every update for this test to test it"
        for run in (a, b, single):
            assert run["clipped_norm"] == pytest.approx(CLIP, rel=1e-5), step
    for run in (rank0, rank1, one):
        assert run["diagnostics"]["stability"]["clipped_steps"] == len(updates)
        assert run["diagnostics"]["stability"]["max_grad_norm"] == pytest.approx(
            one["diagnostics"]["stability"]["max_grad_norm"], **NUMBERS_TOL)

    weights_ddp = torch.load(tmp_path / "ddp" / "weights.pt", weights_only=True)
    weights_one = torch.load(tmp_path / "one" / "weights.pt", weights_only=True)
    assert weights_ddp.keys() == weights_one.keys()
    for name in weights_one:
        torch.testing.assert_close(weights_ddp[name], weights_one[name], **WEIGHTS_TOL, msg=name)
    largest = max(float((weights_ddp[k] - weights_one[k]).abs().max()) for k in weights_one)

    # Validation metrics and the diagnostics count the whole global batch / validation set on every rank.
    assert set(one["val"]) == {"val_loss", "val_mse", "val_accuracy"}
    for name, value in one["val"].items():
        assert rank0["val"][name] == rank1["val"][name] == pytest.approx(value, **NUMBERS_TOL), name
    assert rank0["samples"] == rank1["samples"] == one["samples"] == STEPS * GLOBAL_BATCH
    decay = one["diagnostics"]["gradients"]["decay_log10_final"]
    assert rank0["diagnostics"]["gradients"]["decay_log10_final"] == pytest.approx(decay, rel=1e-4)
    print(f"DDP vs one process ({accelerator}): largest weight difference {largest:.2e}, {seconds:.1f} s")


# ----------------------------------------------------------------- mixed precision

CELLS = [("rnn", None), ("rnn", "elu"), ("rnn", "leaky_relu"), ("lstm", None), ("gru", None)]  # fused; loop; fused
PRECISIONS = [
    ("cpu", "bf16-mixed"),
    pytest.param("cuda", "16-mixed", marks=pytest.mark.skipif(not CUDA, reason="fp16 mixed precision needs CUDA")),
    pytest.param("cuda", "bf16-mixed", marks=pytest.mark.skipif(
        not (CUDA and torch.cuda.is_bf16_supported()), reason="needs a CUDA device with bf16")),
]
SEQ_LEN = 12


def _loader(batch_size: int = 8, n: int = 32) -> DataLoader:
    x, y = make_adding(n, SEQ_LEN, torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


class LossRecord(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.parametrize("accelerator,precision", PRECISIONS)
@pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=["rnn-tanh", "rnn-elu", "rnn-leaky_relu", "lstm", "gru"])
def test_mixed_precision_trains_every_cell(accelerator, precision, cell, nonlinearity):
    """A few steps with clipping and the diagnostics on: finite losses, weights kept in float32, the loss going down."""
    config = RNNConfig(cell=cell, nonlinearity=nonlinearity, hidden_size=16)
    model = SequenceModel(AddingProblem(seq_len=SEQ_LEN).task_spec, config, OptimConfig(lr=1e-2))
    record = LossRecord()
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=6, gradient_clip_val=1.0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[record, *default_diagnostics(model.task, every_n_steps=2)])
    trainer.fit(model, _loader())
    assert len(record.losses) == 6 and all(math.isfinite(v) for v in record.losses), record.losses
    assert model.skipped_steps == 0
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    assert min(record.losses[3:]) < record.losses[0]


@pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=["rnn-tanh", "rnn-elu", "rnn-leaky_relu", "lstm", "gru"])
def test_backbone_under_cpu_bf16_autocast_agrees_with_float32(cell, nonlinearity):
    """Whatever ran in bf16 (fused tanh, loop, LSTM), the outputs and gradients are float32's to bf16 precision."""
    torch.manual_seed(0)
    backbone = RNNBackbone(2, RNNConfig(cell=cell, nonlinearity=nonlinearity, hidden_size=16))
    x = make_adding(8, SEQ_LEN, torch.Generator().manual_seed(0))[0]
    out32, _ = backbone(x)
    (grad32,) = torch.autograd.grad(out32.sum(), backbone.rnn.weight_hh_l0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16, _ = backbone(x)
    (grad16,) = torch.autograd.grad(out16.float().sum(), backbone.rnn.weight_hh_l0)
    assert grad16.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: 2^-8 = 0.4% relative, a few roundings over 12 steps
    torch.testing.assert_close(out16.float(), out32, rtol=0.05, atol=0.02)
    torch.testing.assert_close(grad16, grad32, rtol=0.05, atol=0.05 * float(grad32.abs().max()))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fp16_grad_scaler_overflow_is_not_divergence(cell):
    """Under 16-mixed, GradScaler starts at scale 2^16 and finds its scale through gradients that overflow.

    Those steps are the scaler's to skip; ``nonfinite="stop"`` must not end the run on them
    (it did: "diverged at step 0: non-finite gradient in head.bias"). Lightning allows
    16-mixed on GPUs only, so this runs its MixedPrecision plugin on the CPU with a CPU
    GradScaler, the same code path.
    """
    model = SequenceModel(AddingProblem(seq_len=SEQ_LEN).task_spec, RNNConfig(cell=cell, hidden_size=16),
                          OptimConfig(lr=1e-2), nonfinite="stop")
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    record = LossRecord()
    trainer = L.Trainer(accelerator="cpu", plugins=[plugin], max_steps=6, gradient_clip_val=1.0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[record])
    trainer.fit(model, _loader())
    assert plugin.scaler.get_scale() < 2.0**16  # the scaler did meet an overflow, and lowered its scale
    assert model.skipped_steps == 0 and trainer.global_step == 6
    assert all(math.isfinite(v) for v in record.losses)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("accelerator,precision", PRECISIONS)
def test_zoo_fit_takes_mixed_precision(tmp_path, monkeypatch, accelerator, precision):
    monkeypatch.chdir(tmp_path)
    seen = {}
    run_cli = zoo.app.cli.run_cli
    monkeypatch.setattr(zoo.app.cli, "run_cli", lambda args=None: seen.setdefault("cli", run_cli(args)))
    args = ["fit", "--data", "AddingProblem", "--data.seq_len", str(SEQ_LEN), "--data.batch_size", "8",
            "--data.batches_per_epoch", "2", "--data.val_size", "16", "--data.test_size", "16",
            "--model.backbone.cell", "lstm", "--model.backbone.hidden_size", "8", "--trainer.max_steps", "2",
            "--trainer.gradient_clip_val", "1.0", "--trainer.logger", "false", "--trainer.enable_progress_bar",
            "false", "--trainer.enable_model_summary", "false", "--seed_everything", "0", "--diagnostics_every_n_steps",
            "1", "--trainer.accelerator", accelerator, "--trainer.precision", precision]
    assert zoo.app.cli.main(args) == 0
    trainer, model = seen["cli"].trainer, seen["cli"].model
    assert trainer.precision == precision and isinstance(trainer.precision_plugin, MixedPrecision)
    assert trainer.global_step == 2 and model.skipped_steps == 0
    assert math.isfinite(float(trainer.callback_metrics["train_loss"]))
    assert math.isfinite(float(trainer.callback_metrics["val_mse"]))


# ----------------------------------------------------------------- a stateful task's streams under DDP

def test_language_model_streams_under_ddp(tiny_ptb):
    """Under DDP process r reads its own B of W*B streams, in order; Lightning must not deal the windows out.

    Window k+1 of a stream continues window k, and the model carries its state across, so
    each process reads its streams' windows in order: together the processes read what one
    process reads with batch W*B. Validation and test are read whole by every process (the
    metrics add the equal shares up), so their numbers do not depend on the number of devices.
    """
    from types import SimpleNamespace

    from torch.utils.data import DistributedSampler

    from tasks.language import LanguageModelling

    def windows(dm, rank=None, world=None, split="train"):
        dm.trainer = None if world is None else SimpleNamespace(global_rank=rank, world_size=world)
        loader = getattr(dm, f"{split}_dataloader")()
        if world is not None:  # Lightning leaves a loader that has a DistributedSampler as it is
            assert isinstance(loader.sampler, DistributedSampler)
        return list(loader)

    dm = LanguageModelling("ptb", batch_size=2, bptt=3, eval_batch_size=2, data_dir=str(tiny_ptb))
    one = windows(LanguageModelling("ptb", batch_size=6, bptt=3, data_dir=str(tiny_ptb)))
    ranks = [windows(dm, rank, 3) for rank in range(3)]
    assert len(one) > 2 and all(len(r) == len(one) for r in ranks)
    for k, (x, y) in enumerate(one):
        torch.testing.assert_close(torch.cat([r[k][0] for r in ranks]), x)
        torch.testing.assert_close(torch.cat([r[k][1] for r in ranks]), y)
    for split in ("val", "test"):
        whole = windows(dm, split=split)
        for rank in range(3):
            got = windows(dm, rank, 3, split)
            assert len(got) == len(whole) and all(torch.equal(a[0], b[0]) for a, b in zip(got, whole))
