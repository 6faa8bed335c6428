"""The layering that `make lint` states as import contracts, checked at run time too."""

import json
import subprocess
import sys

TRAINING_STACK = ("lightning", "hydra", "omegaconf", "pycocotools", "albumentations")


def test_inference_imports_none_of_the_training_stack():
    code = (
        "import json, sys\n"
        "import mobilevitpose.inference.estimator, mobilevitpose.inference.predict\n"
        "import mobilevitpose.inference.onnx, mobilevitpose.inference.checkpoint\n"
        "import mobilevitpose.inference.artifacts, mobilevitpose.inference.calibration\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('executorch'): import executorch.runtime\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_STACK})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
