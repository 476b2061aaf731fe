"""SequenceModel: a recurrent backbone, the head its task asks for, the loss, metrics and optimizer.

Built from a TaskSpec (what the data is) plus an RNNConfig (what the network is) plus
an OptimConfig (how it learns), so nothing here knows which task it is solving.

L1 and L2 penalties are added to the loss: their gradient goes through clipping and,
with Adam, through the adaptive per-parameter scaling. That is not the optimizer's
``weight_decay``: for sgd/adam/rmsprop weight decay is added to the gradient after
clipping (for plain SGD, l2 = weight_decay / 2 is the same update when nothing is
clipped), and for adamw it is decoupled from the gradient entirely (Loshchilov &
Hutter 2019). The penalties cover weight matrices only, not biases.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.errors import ZooError, check_choice, check_float, check_int
from zoo.metrics import build_metrics
from zoo.models.rnn import RNNBackbone, RNNConfig
from zoo.optim import OptimConfig, build_optimizer, build_schedule, parameter_groups
from zoo.task_spec import TaskSpec


EMBEDDING_INIT_RANGE = 0.1
NONFINITE_POLICIES = ("stop", "skip")  # what a non-finite loss or gradient does to the run


class DivergedError(ZooError):
    """Training produced a non-finite loss."""


def map_state(state: Any, fn) -> Any:
    """``fn`` applied to a recurrent state: a tensor, or LSTM's (h, c) pair; None stays None."""
    if state is None:
        return None
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def detach_state(state: Any) -> Any:
    """Cut the graph behind a recurrent state: truncated BPTT."""
    return map_state(state, torch.Tensor.detach)


class SequenceModel(L.LightningModule):
    """A recurrent network trained on one task; see the module docstring for the penalties.

    Token inputs are read through an embedding of ``embedding_size`` (default: the
    hidden size). ``tie_weights`` shares the embedding matrix with the every-step
    decoder (Press & Wolf 2017; Inan et al. 2017), which needs the embedding size to
    equal the backbone's output size.

    ``nonfinite`` says what a non-finite training loss or gradient does: ``stop`` ends
    the run at once with "diverged at step k: reason" (a ``DivergedError``, which the
    runners turn into a record that says so); ``skip`` drops that step's update and
    counts it in ``skipped_steps``. Either way no weight is ever updated from a NaN. Under DDP
    the processes decide together, on the global batch's loss; under fp16 mixed precision
    (``16-mixed``) gradients that overflow are GradScaler's to skip, not a divergence.

    ``io_dropout`` drops out the two non-recurrent connections outside the stack, the
    embedded tokens going in and the features the head reads, as Zaremba et al. (2014)
    and pytorch/examples' ``word_language_model`` do; the backbone's own ``dropout``
    acts between its layers. Dense inputs (the adding problem, MNIST pixels) are never
    dropped: only what the head reads is.
    """

    @classmethod
    def from_config(cls, model: dict[str, Any], task: TaskSpec | dict[str, Any]) -> SequenceModel:
        """The model a run config's ``model`` section describes (``backbone``, ``optim``, ``module``)."""
        return cls(task, RNNConfig.coerce(model["backbone"]), OptimConfig.coerce(model.get("optim") or {}),
                   **model.get("module", {}))

    def __init__(
        self,
        task: TaskSpec,
        backbone: RNNConfig = RNNConfig(),
        optim: OptimConfig = OptimConfig(),
        l1: float = 0.0,
        l2: float = 0.0,
        embedding_size: int | None = None,
        tie_weights: bool = False,
        io_dropout: float = 0.0,
        nonfinite: str = "stop",
    ) -> None:
        super().__init__()
        self.task = TaskSpec.coerce(task)
        self.backbone_config = RNNConfig.coerce(backbone)
        self.optim_config = OptimConfig.coerce(optim)
        if self.task.stateful and self.backbone_config.bidirectional:
            raise ZooError(f"a bidirectional backbone cannot learn task {self.task.name!r}: it is a language model "
                           "(a stream predicted token by token), and the backward direction would read each token "
                           "before predicting it, seeing the future; use a unidirectional backbone "
                           "(bidirectional false)")
        self.l1 = check_float("l1", l1, low=0.0)
        self.l2 = check_float("l2", l2, low=0.0)
        io_dropout = check_float("io_dropout", io_dropout, low=0.0, high=1.0, high_open=True)
        self.nonfinite = check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        if self.task.input_kind != "tokens" and embedding_size is not None:
            raise ZooError(f"embedding_size {embedding_size} was given, but task {self.task.name!r} has dense inputs, "
                           "not tokens; leave embedding_size unset")
        if self.task.input_kind == "tokens":
            embedding_size = check_int(
                "embedding_size", self.backbone_config.hidden_size if embedding_size is None else embedding_size, low=1
            )
        # Plain dicts, so a checkpoint's hyperparameters load without unpickling our classes.
        self.save_hyperparameters(
            {
                "task": self.task.to_dict(),
                "backbone": self.backbone_config.to_dict(),
                "optim": self.optim_config.to_dict(),
                "l1": self.l1,
                "l2": self.l2,
                "embedding_size": embedding_size,
                "tie_weights": bool(tie_weights),
                "io_dropout": io_dropout,
                "nonfinite": self.nonfinite,
            }
        )
        self.embedding = nn.Embedding(self.task.input_size, embedding_size) if embedding_size else None
        self.backbone = RNNBackbone(embedding_size or self.task.input_size, self.backbone_config)
        self.head = nn.Linear(self.backbone.output_size, self.task.output_size)
        # Identity when off, so a run without it draws no random numbers for it.
        self.io_dropout = nn.Dropout(io_dropout) if io_dropout else nn.Identity()
        if tie_weights:
            if self.embedding is None or self.task.head != "every" or self.task.input_size != self.task.output_size:
                raise ZooError("tie_weights needs token inputs and an every-step decoder over the same vocabulary, "
                               f"but task {self.task.name!r} has input_kind {self.task.input_kind!r}, head {self.task.head!r}")
            if embedding_size != self.backbone.output_size:
                raise ZooError(f"tie_weights needs embedding_size == the backbone's output size "
                               f"({self.backbone.output_size}), got embedding_size {embedding_size}")
            self.head.weight = self.embedding.weight
        if self.embedding is not None:
            # pytorch/examples and Zaremba et al.: U(-0.1, 0.1), not nn.Embedding's N(0, 1), which
            # would feed the first layer inputs ten times larger than its weights expect.
            nn.init.uniform_(self.embedding.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
            if not tie_weights:
                nn.init.uniform_(self.head.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
            nn.init.zeros_(self.head.bias)
        parameter_groups(self.named_parameters(), self.optim_config)  # a bad optim.group_lrs fails here, not at fit
        self.val_metrics = build_metrics(self.task, prefix="val_")
        self.test_metrics = build_metrics(self.task, prefix="test_")
        self._state: Any = None  # the recurrent state carried between batches of a stateful task
        self._train_state: Any = None  # training's state, set aside while validation runs
        self.skipped_steps = 0  # steps dropped under nonfinite="skip"
        self._drop_update = False  # a non-finite step under DDP: its backward runs, its update is dropped
        # (loss, penalty) of the training steps since the last optimizer step, checked with the gradients
        self._unchecked_losses: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self._resumed_mid_epoch = False  # set when a checkpoint brings back a carried state
        self.grad_norms: dict[str, torch.Tensor] = {}  # this step's gradient norm per parameter, before clipping

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, state: Any = None) -> torch.Tensor:
        # x: (B, T, I) floats or (B, T) token ids -> (B, O), (B,) for a scalar regression, or (B, T, O)
        return self.run(x, state)[0]

    def run(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """The output the task's head gives, and the final recurrent state."""
        outputs, state = self.backbone(self.embed(x), state)  # (B, T, D*H)
        return self.read_out(outputs, state), state

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """What the backbone reads: token ids through the embedding, dense inputs as they are."""
        if self.embedding is None:
            return x  # (B, T, I)
        return self.io_dropout(self.embedding(x))  # (B, T) -> (B, T, E)

    def read_out(self, outputs: torch.Tensor, state: Any) -> torch.Tensor:
        """The head on the backbone's outputs (B, T, D*H) and final state: (B, T, O), (B, O) or (B,).

        Apart from ``run`` so that the diagnostics can feed it the states of their own
        unrolled copy of the backbone.
        """
        if self.task.head == "every":
            return self.head(self.io_dropout(outputs))  # (B, T, O)
        out = self.head(self.io_dropout(self.backbone.last_features(state)))  # (B, O)
        if self.task.loss == "mse" and self.task.output_size == 1:
            out = out.squeeze(-1)  # (B,)
        return out

    @staticmethod
    def _flat(out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, O), (B, T) -> (B*T, O), (B*T,); the last-step shapes pass unchanged."""
        if out.dim() == 3:
            return out.reshape(-1, out.shape[-1]), target.reshape(-1)
        return out, target

    def task_loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over every prediction: over the batch for a last-step head, over batch and time for every-step."""
        out, target = self._flat(out, target)
        if self.task.loss == "mse":
            return F.mse_loss(out, target)
        return F.cross_entropy(out, target)

    def _step_output(self, x: torch.Tensor) -> torch.Tensor:
        """Run a batch; a stateful task starts from the state the previous batch left, detached."""
        if not self.task.stateful:
            return self(x)
        state = self._state
        if state is not None and (state[0] if isinstance(state, tuple) else state).shape[1] != x.shape[0]:
            state = None  # a batch of another size is not the continuation of these streams
        out, state = self.run(x, state)
        self._state = detach_state(state)
        return out

    def on_train_epoch_start(self) -> None:
        if not self._resumed_mid_epoch:  # a resumed epoch goes on from the state its checkpoint carried
            self._state = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._resumed_mid_epoch:  # the first step after a resume: the carried state was loaded on the CPU
            self._resumed_mid_epoch = False
            self._state = map_state(self._state, lambda s: s.to(self.device))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The recurrent state carried into the next batch, and the skipped steps, so a resumed run continues them."""
        checkpoint["carried_state"] = self._state
        checkpoint["skipped_steps"] = self.skipped_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._state = checkpoint.get("carried_state")
        self.skipped_steps = int(checkpoint.get("skipped_steps", 0))
        self._resumed_mid_epoch = self._state is not None

    def on_validation_epoch_start(self) -> None:
        self._train_state, self._state = self._state, None  # evaluation reads its own streams from a zero state

    def on_validation_epoch_end(self) -> None:
        self._state = self._train_state  # training resumes where its windows left off

    def on_test_epoch_start(self) -> None:
        self._state = None

    def penalty(self) -> torch.Tensor | None:
        """l1 * sum|W| + l2 * sum W^2 over weight matrices, or None when both are off."""
        if not (self.l1 or self.l2):
            return None
        weights = [p for p in self.parameters() if p.dim() >= 2]
        total = torch.zeros((), device=weights[0].device)
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in weights)
        if self.l2:
            total = total + self.l2 * sum(w.pow(2).sum() for w in weights)
        return total

    # ----------------------------------------------------------------- steps
    def _distributed(self) -> bool:
        return self._trainer is not None and self._trainer.world_size > 1

    def _grad_scaler(self) -> bool:
        """Whether a GradScaler runs the optimizer steps (precision 16-mixed), skipping those with non-finite gradients."""
        plugin = self._trainer.precision_plugin if self._trainer is not None else None
        return getattr(plugin, "scaler", None) is not None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.task_loss(self._step_output(x), y)
        penalty = self.penalty()
        total = loss if penalty is None else loss + penalty
        if self._distributed():
            # The loss averaged over the processes (one all-reduce; in place, hence the clone): every
            # process logs the same number, the global batch's, and all agree on whether it is finite.
            mean_loss = self.trainer.strategy.reduce(loss.detach().clone(), reduce_op="mean")
            reason = self._nonfinite_loss(mean_loss, penalty)
            if reason is not None:
                self.on_nonfinite(reason)
                # Lightning cannot skip a step under DDP, and a process that skipped alone would leave the
                # others waiting in the gradient all-reduce: every process runs its backward, and
                # on_before_optimizer_step drops the update on all of them.
                self._drop_update = True
                return total
        else:
            # Checked in on_before_optimizer_step with the gradient norms, in one look at the device a step.
            # A look here would hold the host until the forward is done, and on a GPU the Python of
            # Lightning's backward could no longer run while the GPU works: on an H100 the sMNIST LSTM
            # step under the Trainer took 10.0 ms with it and 7.7 ms without (the plain loop: 5.8 ms).
            mean_loss = loss
            self._unchecked_losses.append((loss.detach(), None if penalty is None else penalty.detach()))
        self.log("train_loss", mean_loss, prog_bar=True)
        if penalty is not None:
            self.log("train_penalty", penalty)
        return total

    @staticmethod
    def _nonfinite_loss(loss: torch.Tensor, penalty: torch.Tensor | None) -> str | None:
        """What is not finite, the training loss or the weight penalty, as on_nonfinite's reason; None if both are."""
        if not torch.isfinite(loss):
            return f"training loss is {loss.item()}"
        if penalty is not None and not torch.isfinite(penalty):
            return f"weight penalty is {penalty.item()}"
        return None

    def on_nonfinite(self, reason: str) -> None:
        """Apply the ``nonfinite`` policy: raise "diverged at step k: reason", or count a skipped step."""
        if self.nonfinite == "stop":
            raise DivergedError(f"diverged at step {self.global_step}: {reason}")
        self.skipped_steps += 1
        self._state = None  # a stateful task's carried state came out of the same bad numbers

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's optimizer step, then every backbone layer's own constraint, in place.

        A layer with a ``constrain_()`` method (IndRNN's bound on its recurrent gains |u|)
        is put back inside its constraint after every update, as its paper does, so no
        forward pass ever sees weights outside it. The zoo's built-in cells have none.
        """
        super().optimizer_step(*args, **kwargs)
        with torch.no_grad():
            for module in self.backbone.modules():
                if callable(getattr(module, "constrain_", None)):
                    module.constrain_()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradient norms per parameter before clipping (Lightning clips after this hook); the step's losses and
        gradients checked for NaN/inf, and its update dropped if any is."""
        losses, self._unchecked_losses = self._unchecked_losses, []
        if self._drop_update:  # a non-finite step under DDP, already counted (or stopped) in training_step
            self._drop_update = False
            self._drop_this_update()
            return
        self.grad_norms = {
            name: torch.linalg.vector_norm(p.grad) for name, p in self.named_parameters() if p.grad is not None
        }
        checked = [t for pair in losses for t in pair if t is not None] + list(self.grad_norms.values())
        if not checked or torch.isfinite(torch.stack(checked)).all():  # the one device sync of the check
            return
        reason = next((r for r in (self._nonfinite_loss(*pair) for pair in losses) if r is not None), None)
        if reason is None and self._grad_scaler():
            # fp16 mixed precision: gradients that overflow are how GradScaler finds its scale; it skips
            # this update and lowers the scale itself. Not a divergence, and nothing for the statistics.
            self.grad_norms = {}
            return
        if reason is None:
            bad = next(name for name, norm in self.grad_norms.items() if not torch.isfinite(norm))
            reason = f"non-finite gradient in {bad}"
        self.on_nonfinite(reason)
        self._drop_this_update()

    def _drop_this_update(self) -> None:
        self.grad_norms = {}  # nothing of this step reaches the statistics
        for p in self.parameters():
            p.grad = None  # the optimizer leaves a parameter without a gradient untouched: the step is dropped

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        out = self._step_output(x)
        # sync_dist: under DDP the epoch's loss over every process's share, as the metrics are (a no-op on one device)
        self.log(f"{stage}_loss", self.task_loss(out, y), prog_bar=stage == "val", batch_size=y.numel(), sync_dist=True)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(*self._flat(out, y))
        self.log_dict(metrics, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def on_test_end(self) -> None:
        """Print each test metric beside its trivial baseline, so a number can be read at a glance."""
        metrics = self.trainer.callback_metrics
        for name, baseline in self.task.baselines.items():
            key = f"test_{name}"
            if key in metrics:
                note = f" ({self.task.baseline_note})" if self.task.baseline_note else ""
                rank_zero_info(f"{key} {float(metrics[key]):.4f}; trivial baseline {baseline:.4f}{note}")

    # ----------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(parameter_groups(self.named_parameters(), self.optim_config), self.optim_config)
        schedule = build_schedule(optimizer, self.optim_config, total_steps=self._total_steps())
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def _total_steps(self) -> int:
        if self.optim_config.schedule != "cosine":
            return 0
        steps = self.trainer.estimated_stepping_batches
        if steps == float("inf"):
            raise ZooError("schedule 'cosine' needs a finite run: set trainer max_steps or max_epochs")
        return int(steps)
