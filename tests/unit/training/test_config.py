"""Every config group option and experiment composes, and what it configures instantiates."""

import dataclasses

import lightning as L
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.augment import AugmentRecipe
from mobilevitpose.data.datamodule import CocoDataModule
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.training.config import (
    available,
    build_callbacks,
    build_datamodule,
    build_loggers,
    compose,
    config_dir,
    instantiate,
    to_plain,
)
from mobilevitpose.training.module import PoseLitModule

SMALL = "model.input_size=[64,64]"
_PATHS: list[str] = []


@pytest.fixture(autouse=True)
def _fresh_hydra_and_paths(tmp_path):
    GlobalHydra.instance().clear()
    _PATHS[:] = [f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}"]
    yield
    GlobalHydra.instance().clear()


def _compose(*overrides: str):
    cfg = compose("train", [*_PATHS, *overrides])
    OmegaConf.resolve(cfg)  # every interpolation must resolve
    return cfg


def _instantiate_run(cfg) -> PoseLitModule:
    module = instantiate(cfg.module)
    assert isinstance(module, PoseLitModule)
    assert module.codec.heatmap_size == module.model.heatmap_size
    datamodule = build_datamodule(cfg.data, module.codec, cfg.seed)
    assert isinstance(datamodule, CocoDataModule)
    assert all(isinstance(c, L.Callback) for c in build_callbacks(cfg))
    build_loggers(cfg)
    return module


@pytest.mark.parametrize(
    ("group", "option"),
    [
        (group, option)
        for group in ("codec", "optimizer", "scheduler", "evaluation", "augment", "data",
                      "callbacks", "logger", "init", "module")
        for option in available(group)
    ],
)  # fmt: skip
def test_every_group_option_composes_and_instantiates(group, option):
    overrides = [SMALL, f"{group}={option}"]
    if group == "init" and option == "imagenet":
        # Composing is enough offline: the weights come from the hub or init.file.
        assert _compose(*overrides).init.pretrained is True
        return
    _instantiate_run(_compose(*overrides))


@pytest.mark.parametrize("option", available("trainer"))
def test_every_trainer_composes_and_the_cpu_ones_instantiate(option):
    cfg = _compose(f"trainer={option}")
    assert cfg.trainer.max_epochs < 210  # the paper's epochs live in experiment/paper
    if cfg.trainer.accelerator == "cpu":
        assert isinstance(instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("experiment", available("experiment"))
def test_every_experiment_composes_and_instantiates(experiment):
    cfg = _compose(f"experiment={experiment}", "trainer=cpu")
    module = _instantiate_run(cfg)
    assert list(module.model.input_size) == list(cfg.model.input_size)
    assert isinstance(instantiate(cfg.trainer), L.Trainer)


def test_the_quickstart_validates_at_its_last_epoch_whatever_the_epochs():
    # The README's run for a CPU without native bf16 shortens the quickstart to 5 epochs: it
    # must still validate (and so checkpoint its best) at the end.
    trainer = instantiate(_compose("experiment=quickstart", "trainer.max_epochs=5").trainer)
    assert trainer.max_epochs == 5
    assert trainer.check_val_every_n_epoch == 5


_MISSING = object()


def _leaves(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, node


def _lookup(node, key):
    for part in key:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def test_experiment_files_state_only_what_differs_from_the_defaults():
    defaults = to_plain(_compose())
    for name in available("experiment"):
        experiment = OmegaConf.load(config_dir() / "experiment" / f"{name}.yaml")
        for key, value in _leaves(OmegaConf.to_container(experiment)):
            if key[0] in ("defaults", "hydra") or key == ("experiment_name",):
                continue
            current = _lookup(defaults, key)
            assert current is _MISSING or current != value, (
                f"experiment/{name}.yaml restates the default {'.'.join(key)}={value!r}"
            )


@pytest.mark.parametrize("option", available("debug"))
def test_every_debug_option_composes(option):
    assert _compose(f"debug={option}").trainer


def test_codec_options_and_derived_values():
    cfg = _compose("model.input_size=[192,256]", "codec=dark")
    module = instantiate(cfg.module)
    assert module.codec == HeatmapCodec("msra", (192, 256), (48, 64), sigma=2.0, unbiased=True)
    assert module.model.heatmap_size == (48, 64)
    assert module.evaluation == EvaluationSettings()
    assert isinstance(instantiate(cfg.augment), AugmentRecipe)


def test_the_paper_recipe_is_the_papers():
    cfg = _compose("experiment=paper")
    assert (cfg.trainer.max_epochs, list(cfg.scheduler.milestones)) == (210, [170, 200])
    assert (cfg.optimizer.lr, cfg.data.batch_size, cfg.codec.kind) == (5e-4, 64, "udp")
    assert instantiate(cfg.augment) == instantiate(_compose("augment=paper").augment)


def test_the_litehrnet_recipe_is_mmposes():
    """MMPose 1.3.2's td-hm_litehrnet-*_coco-256x192.py: Adam 5e-4 (500 warm-up iterations), x0.1
    at 170 and 200 of 210 epochs, MSRA sigma 2 with the shifted flip test, RandomBBoxTransform
    with scale (0.75, 1.25) and rotation 60 over the 1.x defaults; a model override is kept."""
    cfg = _compose("experiment=litehrnet")
    module = instantiate(cfg.module)
    optimizer = instantiate(cfg.optimizer)(module.parameters())
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["lr"] == 5e-4
    assert (cfg.trainer.max_epochs, list(cfg.scheduler.milestones)) == (210, [170, 200])
    assert cfg.scheduler.warmup_iters == 500
    assert (module.model.name, module.model.input_size) == ("litehrnet_18", (192, 256))
    assert (module.codec.kind, module.codec.sigma, module.codec.flip_shift) == ("msra", 2.0, True)
    assert module.evaluation.flip_test
    mmpose_1x = instantiate(_compose("augment=mmpose1x").augment)
    recipe = dataclasses.replace(mmpose_1x, scale_factor=0.25, rotate_factor=60.0)
    assert instantiate(cfg.augment) == recipe
    assert _compose("experiment=litehrnet", "model=litehrnet_30").model.name == "litehrnet_30"


def test_user_overrides_keep_working():
    cfg = _compose("model=mobilevitpose_s", "init=imagenet", "experiment=table3",
                   "logger=wandb", "channels_last=true")  # fmt: skip
    names = (cfg.model.name, cfg.init.name, cfg.experiment_name)
    assert names == ("mobilevitpose_s", "imagenet", "table3")
    assert cfg.logger.wandb.group == "table3"
    assert list(cfg.logger.wandb.tags) == ["mobilevitpose_s", "imagenet", "table3", "rq2"]
    assert cfg.module.channels_last is True and cfg.module.init.pretrained is True


@pytest.mark.parametrize("experiment", [None, *available("experiment")])
def test_every_recipes_decay_falls_inside_its_epochs(experiment):
    cfg = _compose(*([f"experiment={experiment}"] if experiment else []))
    assert all(m < cfg.trainer.max_epochs for m in cfg.scheduler.milestones)
