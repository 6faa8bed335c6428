"""MACs and parameters of MMPose 1.3.2's own Lite-HRNet models, as reports/table2.md quotes them.

Run in MMPose's venv, never the project's (MMPose is no dependency of mobilevitpose):
    bash ../shared/tools/mmpose/install_mmpose.sh /tmp/venvMM
    /tmp/venvMM/bin/python tools/mmpose_litehrnet_macs.py
It prints, per model and input size, mmengine's total (what MMPose's
tools/analysis_tools/get_flops.py prints), its convolutions alone, and the parameter count.
"""

import sys
from pathlib import Path

import mmpose
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tools" / "mmpose"))
import mm_stubs  # noqa: E402  (stand-ins for compiled mmcv ops the model code imports)

mm_stubs.install_all()

from mmengine.analysis import FlopAnalyzer, get_model_complexity_info  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmpose.registry import MODELS  # noqa: E402
from mmpose.utils import register_all_modules  # noqa: E402

CONFIGS = Path(mmpose.__file__).parent / ".mim/configs/body_2d_keypoint/topdown_heatmap/coco"
FILES = {
    "litehrnet_18": "td-hm_litehrnet-18_8xb64-210e_coco-256x192.py",
    "litehrnet_30": "td-hm_litehrnet-30_8xb64-210e_coco-256x192.py",
}


def build(name: str) -> torch.nn.Module:
    cfg = Config.fromfile(CONFIGS / FILES["litehrnet_18" if "naive" in name else name])
    if "naive" in name:  # no MMPose 1.x config: Lite-HRNet-18 with NAIVE blocks, as the paper's
        cfg.model.backbone.extra.stages_spec.module_type = ("NAIVE",) * 3
        cfg.model.backbone.extra.stages_spec.reduce_ratios = (1, 1, 1)
    model = MODELS.build(cfg.model).eval()
    model.forward = model._forward  # what get_flops.py counts: the network alone
    return model


register_all_modules()
for name in ("litehrnet_18", "litehrnet_30", "wider_naive_litehrnet_18"):
    for height, width in ((256, 192), (384, 288)):
        model = build(name)
        info = get_model_complexity_info(model, (3, height, width), show_table=False,
                                         show_arch=False)  # fmt: skip
        analyzer = FlopAnalyzer(model, torch.zeros(1, 3, height, width))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        convs = dict(analyzer.by_operator())["conv"]
        print(f"{name} {width}x{height}: total MACs {info['flops']}, conv MACs {convs}, "
              f"params {info['params']}")  # fmt: skip
