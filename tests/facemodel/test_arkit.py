import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52, arkit_to_model_weights, canonical_arkit_name


def test_arkit_52_unique():
    assert len(ARKIT_52) == 52 and len(set(ARKIT_52)) == 52


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("eyeBlink_L", "eyeBlinkLeft"),
        ("mouthSmile_R", "mouthSmileRight"),
        ("jawOpen", "jawOpen"),
        ("browInnerUp_L", "browInnerUp"),
        ("cheekPuff_R", "cheekPuff"),
        ("exp_03", None),
    ],
)
def test_canonical_names(name, canonical):
    assert canonical_arkit_name(name) == canonical


def test_arkit_to_model_weights():
    w = np.zeros((2, 52), dtype=np.float32)
    w[:, ARKIT_52.index("browInnerUp")] = [0.5, 1.0]
    w[:, ARKIT_52.index("jawOpen")] = [0.25, 0.0]
    out = arkit_to_model_weights(["browInnerUp_L", "jawOpen", "browInnerUp_R", "other"], w)
    np.testing.assert_allclose(out, [[0.5, 0.25, 0.5, 0.0], [1.0, 0.0, 1.0, 0.0]])
    with pytest.raises(InputError, match="52"):
        arkit_to_model_weights(["jawOpen"], np.zeros((3, 51)))
    with pytest.raises(InputError, match="no ARKit"):
        arkit_to_model_weights(["exp_00"], w)
