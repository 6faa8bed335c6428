"""Checkpoint files: reading them without Lightning, the upgrade of the 0.1 format, and
Lightning's own `load_from_checkpoint` working offline."""

import copy
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from helpers import build_module, like_trained, save_checkpoint
from mobilevitpose.inference.checkpoint import (
    CONFIG_KEY,
    FORMAT,
    FORMAT_KEY,
    load_pose_model,
    read_checkpoint,
)
from mobilevitpose.training.config import compose, to_plain
from mobilevitpose.training.module import PoseLitModule, module_from_checkpoint

TINY = ["model.input_size=[64,96]", "codec.sigma=1.0", "paths.output_dir=/tmp/unused"]


def _version_1(module: PoseLitModule, run_config: dict) -> dict:
    """The checkpoint mobilevitpose 0.1 (the flat package) wrote for this module's weights:
    typed heatmap and codec sizes, the init inside the backbone config, flat `_target_`s."""
    hparams = copy.deepcopy(dict(module.hparams))
    model = hparams["model"]
    w, h = model["input_size"]
    model["_target_"] = "mobilevitpose.pose_model.PoseModel"
    model["heatmap_size"] = [w // 4, h // 4]
    model["mean"], model["std"] = list(module.model.mean), list(module.model.std)
    model["backbone"].update(
        _target_="mobilevitpose.backbone.TimmBackbone", pretrained=True, pretrained_file=None
    )
    model["head"]["_target_"] = "mobilevitpose.heads.DeconvHead"
    codec = hparams["codec"]
    codec.update(input_size=[w, h], heatmap_size=[w // 4, h // 4])
    hparams["scheduler"]["_target_"] = "mobilevitpose.module.warmup_multistep"
    del hparams["init"]
    config = {**copy.deepcopy(run_config), "data": {**run_config["data"], "recipe": "paper"}}
    config["data"]["_target_"] = "mobilevitpose.datamodule.CocoDataModule"
    return {"state_dict": module.state_dict(), "hyper_parameters": hparams, CONFIG_KEY: config}


@pytest.fixture(scope="module")
def trained():
    cfg = compose("train", TINY)
    module = build_module(cfg)
    like_trained(module.model)
    return module, to_plain(cfg)


def _heatmaps(model: torch.nn.Module, seed: int = 0) -> np.ndarray:
    images = torch.randint(0, 256, (2, 3, 96, 64), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(seed))  # fmt: skip
    with torch.no_grad():
        return model.eval()(model.normalise(images)).numpy()


def test_a_version_1_checkpoint_loads_with_the_same_weights_codec_and_settings(
    trained, tmp_path, monkeypatch
):
    module, run_config = trained
    path = tmp_path / "old.ckpt"
    torch.save(_version_1(module, run_config), path)
    # The old file said pretrained=true: loading it must still never reach the model hub.
    monkeypatch.setattr(timm.models._builder, "load_pretrained", _no_network)
    model, codec, evaluation = load_pose_model(path)
    np.testing.assert_array_equal(_heatmaps(model), _heatmaps(module.model))
    assert codec == module.codec and evaluation == module.evaluation
    upgraded = read_checkpoint(path)
    assert upgraded.contents[FORMAT_KEY] == FORMAT
    assert upgraded.run["data"]["_target_"] == run_config["data"]["_target_"]
    assert "model" not in upgraded.run and "module" not in upgraded.run
    rebuilt = module_from_checkpoint(upgraded, evaluation={"flip_test": False})
    assert rebuilt.evaluation.flip_test is False
    np.testing.assert_array_equal(_heatmaps(rebuilt.model), _heatmaps(module.model))


def _no_network(*args, **kwargs):
    raise AssertionError("tried to load pre-trained weights")


def test_lightning_load_from_checkpoint_works_offline_and_gives_the_same_model(
    tmp_path, monkeypatch
):
    # A run with init=imagenet from a local file: its checkpoint must rebuild without that file.
    weights = tmp_path / "mobilevit_xxs.safetensors"
    save_file(timm.create_model("mobilevit_xxs").state_dict(), str(weights))
    cfg = compose("train", [*TINY, "init=imagenet", f"init.file={weights}"])
    module = build_module(cfg)
    like_trained(module.model)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                  "pytorch-lightning_version": "2.6.0"}  # fmt: skip
    module.on_save_checkpoint(checkpoint)  # what Lightning calls while saving
    path = tmp_path / "run.ckpt"
    torch.save(checkpoint, path)
    weights.unlink()
    monkeypatch.setattr(timm.models._builder, "load_pretrained", _no_network)
    loaded = PoseLitModule.load_from_checkpoint(path, map_location="cpu")
    np.testing.assert_array_equal(_heatmaps(loaded.model), _heatmaps(module.model))
    model, _, _ = load_pose_model(path)
    np.testing.assert_array_equal(_heatmaps(model), _heatmaps(module.model))


def test_unreadable_and_future_checkpoints_are_named(trained, tmp_path):
    module, _ = trained
    truncated = tmp_path / "cut.ckpt"
    full = tmp_path / "full.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {}}, full)
    truncated.write_bytes(full.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.ckpt.*truncated or not a torch file"):
        read_checkpoint(truncated)
    future = tmp_path / "future.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, FORMAT_KEY: FORMAT + 1}, future)
    with pytest.raises(ValueError, match=rf"future\.ckpt.*format {FORMAT + 1}.*upgrade"):
        read_checkpoint(future)
    not_ours = tmp_path / "other.ckpt"
    torch.save({"weights": 1}, not_ours)
    with pytest.raises(ValueError, match=r"other\.ckpt.*not a mobilevitpose"):
        read_checkpoint(not_ours)
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        read_checkpoint(tmp_path / "missing.ckpt")
    assert not zipfile.is_zipfile(truncated)


def test_a_checkpoint_holds_the_run_config_once_and_a_format_2_file_reads_the_same(
    trained, tmp_path
):
    module, run_config = trained
    path = tmp_path / "run.ckpt"
    save_checkpoint(module, path, run_config)
    stored = torch.load(path, weights_only=True)
    assert stored[FORMAT_KEY] == FORMAT
    assert not set(stored[CONFIG_KEY]) & {"model", "codec", "evaluation", "module"}
    assert stored[CONFIG_KEY]["data"] == run_config["data"]
    # Format 2 stored the whole run config beside the hyperparameters.
    old = tmp_path / "format2.ckpt"
    torch.save({**stored, FORMAT_KEY: 2, CONFIG_KEY: run_config}, old)
    current, earlier = read_checkpoint(path), read_checkpoint(old)
    assert earlier.run == current.run
    assert earlier.data_root("pass --data") == Path(run_config["data"]["root"])
    assert earlier.evaluation == current.evaluation == module.evaluation


def test_a_checkpoint_with_pickled_objects_is_refused_unrun(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Fraction(1, 3)}}, path)
    with pytest.raises(ValueError, match=r"pickled\.ckpt.*pickled Python objects"):
        read_checkpoint(path)


def test_a_missing_data_root_names_the_fix(trained, tmp_path):
    module, run_config = trained
    path = tmp_path / "run.ckpt"
    save_checkpoint(module, path, {**run_config, "data": {}})
    with pytest.raises(ValueError, match=r"run\.ckpt records no data\.root; pass --data"):
        read_checkpoint(path).data_root("pass --data")
