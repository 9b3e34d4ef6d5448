"""Device discovery without a GPU: fake CuPy modules stand in for each failure mode."""

import types

import pytest

from hpcdist.runtime.devices import discover_device


def _fake_cupy(count=None, count_error=None, props_error=None):
    uses = []

    class Runtime:
        @staticmethod
        def getDeviceCount():
            if count_error:
                raise count_error
            return count

        @staticmethod
        def getDeviceProperties(i):
            if props_error:
                raise props_error
            return {"name": f"Fake GPU {i}".encode(), "totalGlobalMem": 80 * 2**30}

    class Dev:
        def __init__(self, i):
            self.i = i

        def use(self):
            uses.append(self.i)

    cuda = types.SimpleNamespace(runtime=Runtime, Device=Dev)
    return types.SimpleNamespace(cuda=cuda), uses


def _importer(module):
    def imp(name):
        if name == "cupy":
            if isinstance(module, Exception):
                raise module
            return module
        raise ImportError(name)

    return imp


def test_cpu_when_cupy_is_missing():
    dev = discover_device(0, importer=_importer(ImportError("No module named 'cupy'")), environ={})
    assert dev.kind == "cpu" and not dev.is_gpu
    assert "cupy not importable" in dev.reason
    assert dev.describe() == "none"


def test_cpu_fallback_through_the_real_import():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here; the fake-module tests cover the fallback")
    dev = discover_device(0, environ={})
    assert dev.kind == "cpu" and "cupy not importable" in dev.reason


def test_cpu_when_no_driver_answers():
    fake, _ = _fake_cupy(count_error=RuntimeError("cudaErrorInsufficientDriver"))
    dev = discover_device(0, importer=_importer(fake), environ={})
    assert dev.kind == "cpu" and "no CUDA driver" in dev.reason


def test_cpu_when_zero_devices():
    fake, _ = _fake_cupy(count=0)
    assert discover_device(3, importer=_importer(fake), environ={}).kind == "cpu"


@pytest.mark.parametrize("local_rank,expected", [(0, 0), (1, 1), (2, 0), (5, 1)])
def test_gpu_bound_by_local_rank_modulo(local_rank, expected):
    fake, uses = _fake_cupy(count=2)
    dev = discover_device(local_rank, importer=_importer(fake), environ={})
    assert dev.is_gpu and dev.index == expected and uses == [expected]
    assert dev.name == f"Fake GPU {expected}" and dev.memory_bytes == 80 * 2**30
    assert dev.describe().startswith(f"gpu{expected} Fake GPU")


def test_forced_cpu_skips_cupy_entirely():
    def explode(name):
        raise AssertionError("must not import anything")

    dev = discover_device(0, importer=explode, environ={"HPCDIST_DEVICE": "cpu"})
    assert dev.kind == "cpu" and "HPCDIST_DEVICE" in dev.reason


def test_unusable_gpu_falls_back():
    fake, _ = _fake_cupy(count=1, props_error=RuntimeError("ECC error"))
    dev = discover_device(0, importer=_importer(fake), environ={})
    assert dev.kind == "cpu" and "unusable" in dev.reason
