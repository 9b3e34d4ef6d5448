import pickle

import pytest
from mpi4py import MPI

from hpcdist.runtime.errors import CollectiveError, HpcdistError, InputError, agree, collective


def test_input_error_names_file_and_line():
    e = InputError("bad weight 'nan'", path="g.txt", line=12)
    assert str(e) == "g.txt:12: bad weight 'nan'"
    assert str(InputError("empty graph", path="g.txt")) == "g.txt: empty graph"
    assert str(InputError("no file")) == "no file"


def test_input_error_survives_pickling():
    e = pickle.loads(pickle.dumps(InputError("x", path="p", line=3)))
    assert isinstance(e, InputError) and (e.path, e.line, str(e)) == ("p", 3, "p:3: x")


def test_agree_on_one_rank_raises_the_error_marked_collective():
    with pytest.raises(InputError) as info:
        agree(MPI.COMM_SELF, InputError("bad", path="f", line=1))
    assert info.value.collective and info.value.origin_rank == 0 and info.value.n_ranks_failed == 1


def test_agree_without_error_is_silent():
    assert agree(MPI.COMM_SELF, None) is None


def test_collective_converts_foreign_errors_to_text():
    with pytest.raises(CollectiveError, match="ValueError: nope"):
        with collective(MPI.COMM_SELF, catch=(ValueError,)):
            raise ValueError("nope")


def test_collective_lets_unexpected_errors_through():
    with pytest.raises(KeyError):
        with collective(MPI.COMM_SELF):
            raise KeyError("a bug, not bad input")


def test_exit_codes():
    assert HpcdistError("x").exit_code == 2
