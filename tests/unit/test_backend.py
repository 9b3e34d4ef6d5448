import types

import numpy
import pytest

from hpcdist.runtime.backend import resolve_backend
from hpcdist.runtime.devices import CPU, Device
from hpcdist.runtime.errors import BackendError

GPU = Device(kind="gpu", index=0, name="Fake", n_visible=1)
FAKE_CUPY = types.SimpleNamespace(__name__="cupy")


def importer(available):
    def imp(name):
        if name in available:
            return FAKE_CUPY if name == "cupy" else types.SimpleNamespace(__name__=name)
        raise ImportError(name)

    return imp


@pytest.mark.parametrize(
    "requested,device,available,expected",
    [
        ("auto", CPU, {"numba"}, "numba"),
        ("auto", CPU, set(), "numpy"),
        ("auto", GPU, {"numba", "cupy"}, "cupy"),
        ("numpy", GPU, {"numba", "cupy"}, "numpy"),
        ("numba", CPU, {"numba"}, "numba"),
        ("cupy", GPU, {"cupy"}, "cupy"),
        ("AUTO", CPU, {"numba"}, "numba"),
    ],
)
def test_resolution(requested, device, available, expected):
    b = resolve_backend(requested, device, importer=importer(available))
    assert b.name == expected
    assert b.xp is (FAKE_CUPY if expected == "cupy" else numpy)


def test_cupy_without_gpu_is_refused_clearly():
    with pytest.raises(BackendError, match="needs a GPU"):
        resolve_backend("cupy", CPU, importer=importer({"cupy"}))


def test_numba_missing_is_refused_clearly():
    with pytest.raises(BackendError, match="numba does not import"):
        resolve_backend("numba", CPU, importer=importer(set()))


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendError, match="unknown backend 'tpu'.*numpy, numba, cupy, auto"):
        resolve_backend("tpu", CPU)
