"""Limits from the bad-input audit that need no MPI: generator spec numbers and
``hpcdist demo --samples`` in the form its help shows."""

import argparse
import re

import pytest

from hpcdist.cli.demo import add_arguments, sample_count
from hpcdist.graph.generators import MAX_COUNT, MAX_SEED, parse_generator_spec
from hpcdist.runtime.errors import InputError


@pytest.mark.parametrize("spec,text", [
    (f"rmat:10:16:{MAX_SEED + 1}", "SEED must be at most 2^64-1"),
    ("rmat:10:16:99999999999999999999999", "SEED must be at most 2^64-1"),
    (f"er:10:2:{2**128}", "SEED must be at most 2^64-1"),
    (f"er:{MAX_COUNT + 1}:1", "N must be at most 2^62"),
    ("er:10:1e308", "AVGDEG must be at most 2^62"),
    (f"er:{MAX_COUNT}:4", "edges, more than the 2^62"),
    (f"grid2d:{2**31 + 1}", "N must be at most 2^31"),
    ("grid2d:2147483648", "edges, more than the 2^62"),
    ("rmat:62:16", "edges, more than the 2^62"),
    (f"rmat:4:{MAX_COUNT + 1}", "EDGEFACTOR must be at most 2^62"),
])
def test_numbers_beyond_the_generators_range_are_refused_naming_the_spec(spec, text):
    with pytest.raises(InputError, match=re.escape(text)) as info:
        parse_generator_spec(spec)
    assert repr(spec) in str(info.value)


def test_limits_themselves_are_accepted():
    assert parse_generator_spec(f"rmat:4:1:{MAX_SEED}").seed == 2**64 - 1
    assert parse_generator_spec(f"er:10:1:{MAX_SEED}").seed == 2**64 - 1
    s = parse_generator_spec("rmat:60:4")
    assert s.n_edges == 4 * 2**60 == MAX_COUNT
    assert parse_generator_spec(f"er:{MAX_COUNT}:0.5").n_vertices == MAX_COUNT


@pytest.mark.parametrize("text,value", [("20000000", 20_000_000), ("2e7", 20_000_000), ("2.5e6", 2_500_000),
                                        ("1E3", 1000), ("-5", -5), (str(2**53), 2**53)])
def test_sample_count_accepts_integers_in_exponent_form(text, value):
    assert sample_count(text) == value


@pytest.mark.parametrize("text", ["2.5", "abc", "1e400", "nan", "inf", "1e23", ""])
def test_sample_count_refuses_what_is_not_an_integer(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected an integer"):
        sample_count(text)


def test_the_default_the_help_shows_parses_to_the_default():
    p = argparse.ArgumentParser()
    add_arguments(p)
    action = next(a for a in p._actions if a.dest == "samples")
    shown = action.help.rsplit("default ", 1)[1].rstrip(")")
    assert p.parse_args(["--samples", shown]).samples == action.default == p.parse_args([]).samples
