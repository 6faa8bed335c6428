"""Callbacks that the config's `callbacks` group adds to every training run."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import lightning as L


@runtime_checkable
class EpochAware(Protocol):
    """A datamodule whose shuffling and augmentation are seeded by the epoch number."""

    def set_epoch(self, epoch: int) -> None: ...


class EpochSeeding(L.Callback):
    """Tells the datamodule each training epoch's number before its loader starts.

    Shuffling and augmentation are drawn from (seed, epoch, index), and the train workers are
    created per epoch, so a resumed run sees exactly the data an uninterrupted one does.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule: Any = getattr(trainer, "datamodule", None)
        if not isinstance(datamodule, EpochAware):
            raise TypeError(
                f"EpochSeeding needs a datamodule with set_epoch(epoch), as CocoDataModule has; "
                f"got {type(datamodule).__name__}"
            )
        datamodule.set_epoch(trainer.current_epoch)


class RunConfigInCheckpoints(L.Callback):
    """Stores the run's resolved config (less what the module's hyperparameters hold) in every
    checkpoint (`key`), so that mvp-eval can reuse the run's data settings."""

    def __init__(self, config: dict[str, Any], key: str) -> None:
        self.config = config
        self.key = key

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.key] = self.config
