import io
import logging

import pytest

from hpcdist.runtime.abort import format_tagged_traceback
from hpcdist.runtime.errors import InputError
from hpcdist.runtime.logs import RankFormatter, setup_logging
from hpcdist.runtime.messages import Direction, Msg


def test_message_tags_unique_and_described():
    tags = [m.tag for m in Msg]
    assert len(tags) == len(set(tags)) and min(tags) >= 100
    for m in Msg:
        assert isinstance(m.direction, Direction) and m.doc
    assert Msg.TASK.direction is Direction.TO_WORKER
    assert Msg.RESULT.direction is Direction.TO_COORDINATOR


def test_rank_prefix():
    rec = logging.LogRecord("hpcdist.farm", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    assert RankFormatter(3, 8, "node1").format(rec) == "[3/8 node1] INFO hpcdist.farm: hello x"


def test_setup_logging_level_from_env(monkeypatch):
    monkeypatch.setenv("HPCDIST_LOG_LEVEL", "debug")
    buf = io.StringIO()
    log = setup_logging(stream=buf)
    assert log.level == logging.DEBUG
    logging.getLogger("hpcdist.graph").debug("superstep %d", 4)
    assert buf.getvalue().startswith("[0/1 ") and "superstep 4" in buf.getvalue()
    setup_logging("warning", stream=buf)  # idempotent: one handler, new level
    assert len([h for h in log.handlers if h.get_name() == "hpcdist-rank"]) == 1
    assert log.level == logging.WARNING


def test_bad_log_level():
    with pytest.raises(InputError, match="unknown log level 'loud'"):
        setup_logging("loud")


def test_tagged_traceback_tags_every_line():
    try:
        raise ValueError("boom")
    except ValueError as exc:
        text = format_tagged_traceback(exc, 2, 4)
    lines = text.rstrip("\n").split("\n")
    assert all(line.startswith("[2/4 ") for line in lines[:-1])
    assert lines[-2].endswith("ValueError: boom")
    assert lines[-1].startswith("hpcdist: rank 2 of 4 on ") and "aborting all 4 ranks" in lines[-1]
