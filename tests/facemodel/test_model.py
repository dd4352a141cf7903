import numpy as np
import pytest
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel import FaceModel


def tiny_model(V: int = 6, k_id: int = 3, k_exp: int = 2, seed: int = 0) -> FaceModel:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(V, 3))
    lm = np.arange(68) % V
    return FaceModel(
        name="tiny",
        mean=mean,
        faces=np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]]),
        identity_basis=rng.normal(size=(k_id, V, 3)),
        expression_basis=rng.normal(size=(k_exp, V, 3)),
        expression_names=[f"e{i}" for i in range(k_exp)],
        albedo_mean=np.full((V, 3), 0.5),
        albedo_basis=rng.normal(size=(1, V, 3)) * 0.1,
        landmarks=lm,
        regions={"face": np.arange(V), "lip": [0, 1]},
    )


def test_vertices_known_value_and_batch():
    m = tiny_model()
    ident = torch.tensor([[1.0, 0.0, -2.0], [0.0, 0.5, 0.0]])
    exp = torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    out = m.vertices(ident, exp)
    assert out.shape == (2, 6, 3)
    expected0 = m.mean + m.identity_basis[0] - 2 * m.identity_basis[2] + 3 * m.expression_basis[1]
    np.testing.assert_allclose(out[0].numpy(), expected0, rtol=1e-5, atol=1e-5)
    single = m.vertices(ident[1], exp[1])
    assert single.shape == (6, 3)
    np.testing.assert_allclose(single.numpy(), out[1].numpy(), atol=1e-6)
    # fewer coefficients than components use the first ones
    np.testing.assert_allclose(
        m.vertices(identity=torch.tensor([1.0])).numpy(), m.mean + m.identity_basis[0], atol=1e-5
    )
    assert m.vertices().shape == (1, 6, 3)


def test_vertices_offsets_and_broadcast():
    m = tiny_model()
    offsets = torch.ones(4, 6, 3)
    out = m.vertices(expression=torch.zeros(1, 2), offsets=offsets)
    assert out.shape == (4, 6, 3)
    np.testing.assert_allclose(out[2].numpy(), m.mean + 1, atol=1e-6)


def test_vertices_gradcheck_float64():
    m = tiny_model()
    ident = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    exp = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    offs = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: m.vertices(a, b, c), (ident, exp, offs))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"identity": torch.zeros(1, 4)}, "identity coefficients"),
        ({"expression": torch.full((1, 2), float("nan"))}, "NaN"),
        ({"identity": torch.zeros(2, 3), "expression": torch.zeros(3, 2)}, "batch"),
        ({"offsets": torch.zeros(1, 5, 3)}, "offsets"),
        ({"identity": np.zeros((1, 3))}, "torch tensors"),
    ],
)
def test_vertices_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        tiny_model().vertices(**kwargs)


def test_save_load_round_trip(tmp_path):
    m = tiny_model()
    path = m.save(tmp_path / "m.npz")
    back = FaceModel.load(path)
    for name in (
        "mean",
        "faces",
        "identity_basis",
        "expression_basis",
        "albedo_basis",
        "landmarks",
    ):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    assert back.expression_names == m.expression_names
    assert back.regions.keys() == m.regions.keys()
    assert back.info() == m.info()


def test_load_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="x.npz"):
        FaceModel.load(tmp_path / "x.npz")
    with pytest.raises(InputError, match="not found"):
        FaceModel.load(tmp_path / "missing.npz")
    with pytest.raises(InputError, match=".npz"):
        tiny_model().save(tmp_path / "m.mat")


def test_validation_errors():
    m = tiny_model()
    with pytest.raises(InputError, match="faces index"):
        FaceModel(**{**_fields(m), "faces": np.array([[0, 1, 6]])})
    with pytest.raises(InputError, match="expression_basis"):
        FaceModel(**{**_fields(m), "expression_basis": np.zeros((2, 5, 3))})
    with pytest.raises(InputError, match="NaN"):
        FaceModel(**{**_fields(m), "mean": np.full((6, 3), np.nan)})
    with pytest.raises(InputError, match="landmarks"):
        FaceModel(**{**_fields(m), "landmarks": np.arange(10)})


def test_expression_vector():
    m = tiny_model()
    np.testing.assert_array_equal(m.expression_vector({"e1": 0.5}), [0.0, 0.5])
    with pytest.raises(InputError, match="expected one of: e0, e1"):
        m.expression_vector({"jawOpen": 1.0})


def _fields(m: FaceModel) -> dict:
    names = (
        "name",
        "mean",
        "faces",
        "identity_basis",
        "expression_basis",
        "expression_names",
        "albedo_mean",
        "albedo_basis",
        "landmarks",
        "regions",
    )
    return {n: getattr(m, n) for n in names}
