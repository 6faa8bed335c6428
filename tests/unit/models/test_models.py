import pytest
import timm
import torch
from safetensors.torch import save_file

from mobilevitpose.models.backbone import TimmBackbone
from mobilevitpose.models.heads import ConvHead, DeconvHead, SimpleHead
from mobilevitpose.training.config import available, build_model

SMALL = {  # model -> small (w, h) input that still fits its stride
    "vitpose_b": (48, 64),
}
MODELS = available("model")


def _small_overrides(name: str) -> tuple[tuple[int, int], list[str]]:
    w, h = SMALL.get(name, (64, 64))
    return (w, h), [f"model.input_size=[{w},{h}]"]


def test_paper_models_are_configured():
    assert {"mobilevitpose_xxs", "mobilevitpose_xs", "mobilevitpose_s", "vgg16",
            "simplebaseline_r50", "simplebaseline_r152", "hrnet_w32", "hrnet_w48",
            "vitpose_b"} <= set(MODELS)  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_gives_quarter_resolution_heatmaps(name):
    (w, h), overrides = _small_overrides(name)
    model = build_model(name, overrides).eval()
    with torch.no_grad():
        heatmaps = model(torch.randn(2, 3, h, w))
    assert heatmaps.shape == (2, 17, h // 4, w // 4)
    # the head's input width is the backbone's (for timm: its feature_info), never typed in
    first = next(
        m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    )
    assert first.in_channels == model.backbone.out_channels
    if isinstance(model.backbone, TimmBackbone):
        assert model.backbone.out_channels == model.backbone.body.feature_info.channels()[-1]


@pytest.mark.parametrize("name", MODELS)
def test_model_normalisation_is_the_backbones_pretrained_config(name):
    model = build_model(name, _small_overrides(name)[1])
    if isinstance(model.backbone, TimmBackbone):
        pretrained_cfg = timm.get_pretrained_cfg(model.backbone.name)
        expected = (pretrained_cfg.mean, pretrained_cfg.std)
    else:  # Lite-HRNet: the ImageNet normalisation of the reference's configs
        expected = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert model.mean == pytest.approx(expected[0])
    assert model.std == pytest.approx(expected[1])


def test_unknown_timm_backbone_is_named_with_close_matches():
    with pytest.raises(ValueError, match=r"mobilevit_xxxs.*mobilevit_xxs"):
        TimmBackbone("mobilevit_xxxs")


def _save_classifier_weights(path, name="mobilevit_xxs", wrap=None, prefix=""):
    torch.manual_seed(123)
    full = timm.create_model(name, pretrained=False)  # with its ImageNet classifier
    state = {prefix + k: v for k, v in full.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({wrap: state} if wrap else state, path)
    return full


@pytest.mark.parametrize(
    ("filename", "wrap", "prefix"),
    [("w.safetensors", None, ""), ("w.pth", "state_dict", "module."), ("w.pth", "model", "")],
)
def test_imagenet_init_loads_every_backbone_tensor_and_keeps_the_head_fresh(
    tmp_path, filename, wrap, prefix
):
    path = tmp_path / filename
    full = _save_classifier_weights(path, wrap=wrap, prefix=prefix)
    model = build_model("mobilevitpose_xxs", [f"init.file={path}"], init="imagenet")
    loaded = list(model.backbone.body.state_dict().values())
    reference = [v for k, v in full.state_dict().items() if not k.startswith("head.")]
    assert len(loaded) == len(reference)  # every tensor but the classifier
    for got, want in zip(loaded, reference, strict=True):
        assert torch.equal(got, want)
    # the head is freshly initialised: Normal(0, 0.001) weights, untouched by the file
    deconv_weight = model.head.deconv[0].weight
    assert deconv_weight.std().item() == pytest.approx(0.001, rel=0.05)
    plain = build_model("mobilevitpose_xxs")
    assert not torch.equal(plain.backbone.body.state_dict()["stem.conv.weight"],
                           model.backbone.body.state_dict()["stem.conv.weight"])  # fmt: skip


def test_imagenet_init_missing_file_names_path_and_override(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors.*init\.file="):
        build_model("mobilevitpose_xxs", [f"init.file={missing}"], init="imagenet")


def test_imagenet_init_from_another_architecture_lists_keys(tmp_path):
    path = tmp_path / "resnet.safetensors"
    _save_classifier_weights(path, name="resnet18")
    with pytest.raises(
        ValueError, match=r"do not fit backbone 'mobilevit_xxs'.*missing keys.*unexpected keys"
    ):
        build_model("mobilevitpose_xxs", [f"init.file={path}"], init="imagenet")


def test_imagenet_init_without_hub_or_file_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def offline(*args, **kwargs):
        raise OSError("model hub unreachable")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline)
    with pytest.raises(ConnectionError, match=r"mobilevit_xxs(.|\n)*init=imagenet init\.file="):
        build_model("mobilevitpose_xxs", init="imagenet")


@pytest.mark.parametrize(
    ("head", "kwargs", "stride"),
    [(DeconvHead, {"num_deconv": 2}, 32), (SimpleHead, {}, 2), (ConvHead, {}, 8)],
)
def test_heads_refuse_a_backbone_stride_they_cannot_bring_to_four(head, kwargs, stride):
    with pytest.raises(ValueError, match="stride"):
        head(in_channels=8, in_reduction=stride, **kwargs)


def test_simple_head_upsamples_mobilevit_features_to_quarter_resolution():
    head = SimpleHead(in_channels=320, in_reduction=32)
    assert head(torch.randn(1, 320, 8, 8)).shape == (1, 17, 64, 64)


def test_an_input_size_the_backbone_stride_does_not_divide_is_named_with_a_fit():
    with pytest.raises(ValueError, match=r"input_size \[96, 80\].*multiples of 32.*\[96,64\]"):
        build_model("mobilevitpose_xxs", ["model.input_size=[96,80]"])
