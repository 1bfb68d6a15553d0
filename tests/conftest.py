import os

import pytest

# Ray started by the tests stays on loopback: with this, Ray resolves its node address to 127.0.0.1 instead
# of the machine's network address. Ray reads it on import, so it is set before any test module imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture
def official_evaluator(monkeypatch):
    """cityscapesscripts' pixel-level evaluator, set up to run quietly on files under given folders.

    Returns ``score(cityscapes_root, predictions_dir, ground_truth_paths) -> (matched predictions, result)``.
    """
    evaluator = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")

    def score(root, predictions, ground_truth):
        for name, value in [("evalInstLevelScore", False), ("evalPixelAccuracy", False), ("quiet", True),
                            ("JSONOutput", False), ("colorized", False), ("cityscapesPath", str(root)),
                            ("predictionPath", str(predictions)), ("predictionWalk", None), ("evalLabels", [])]:
            monkeypatch.setattr(evaluator.args, name, value)
        matched = [evaluator.getPrediction(evaluator.args, gt) for gt in ground_truth]
        return matched, evaluator.evaluateImgLists(matched, ground_truth, evaluator.args)

    return score
