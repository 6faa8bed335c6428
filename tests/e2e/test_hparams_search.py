"""End-to-end: an Optuna search (conf/hparams_search/optuna.yaml) through mvp-train, and the
metric mvp-train returns to it."""

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from helpers import TINY_TRAIN
from mobilevitpose.cli.train import optimized_stat, optimized_value

METRICS = {"AP": 0.5, "AP50": 0.75, "AR": 0.625}


def test_the_returned_value_is_the_optimized_metric():
    assert optimized_value(METRICS, None) == 0.5
    assert optimized_value(METRICS, "val/AP50") == 0.75
    assert optimized_value(METRICS, "AR") == 0.625
    assert optimized_stat("val/ARl") == "ARl"


def test_an_unknown_optimized_metric_names_the_available_ones():
    with pytest.raises(ValueError, match=r"optimized_metric=val/acc names no metric; "
                       r"available: val/AP, val/AP50, .*, val/ARl$"):  # fmt: skip
        optimized_value(METRICS, "val/acc")


@pytest.mark.slow
def test_two_optuna_trials_and_the_best_of_them(tmp_path, synthetic_root):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -e '.[sweep]'")
    # The default data root, ${paths.data_dir}/synthetic, so that no path enters the trials'
    # overrides (and so their directory names).
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(synthetic_root)
    logs = tmp_path / "runs"
    command = [
        sys.executable, "-m", "mobilevitpose.cli.train", "-m", "hparams_search=optuna",
        "hydra.sweeper.n_trials=2", f"paths.log_dir={logs}", f"paths.data_dir={tmp_path / 'data'}",
        # Every fixed setting goes into a trial's override_dirname: past 255 bytes, too long a
        # directory name.
        "hydra.sweep.subdir=${hydra.job.num}",
        *TINY_TRAIN,  # its codec.sigma and data.batch_size leave the search space
        "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.check_val_every_n_epoch=1",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # One sweep directory where conf/hydra/default.yaml puts multiruns, holding both trials.
    (sweep,) = (logs / "train" / "default" / "multirun").iterdir()
    trials = sorted(sweep.glob("*/metrics.json"))
    assert [p.parent.name for p in trials] == ["0", "1"]
    values = [json.loads(p.read_text())["val/AP"] for p in trials]
    configs = [OmegaConf.load(p.parent / "config.yaml") for p in trials]
    assert configs[0].optimizer.lr != configs[1].optimizer.lr
    for config in configs:
        assert 1e-4 <= config.optimizer.lr <= 5e-3
        assert (config.codec.sigma, config.data.batch_size) == (1.0, 8)

    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == max(values)
    assert set(results.best_params) == {"optimizer.lr", "optimizer.weight_decay"}
    best = configs[values.index(max(values))]
    assert results.best_params["optimizer.lr"] == best.optimizer.lr
