import json

import pytest

from hpcdist.runtime.errors import InputError
from hpcdist.runtime.settings import DEFAULTS, load_settings


def test_defaults():
    s = load_settings(environ={})
    assert s == DEFAULTS and s.sources == {}


def test_precedence_explicit_over_env_over_file_over_default(tmp_path):
    cfg = tmp_path / "hpcdist.json"
    cfg.write_text(json.dumps({"retries": 1, "backoff": 3.0, "strategy": "round_robin"}))
    env = {"HPCDIST_CONFIG": str(cfg), "HPCDIST_RETRIES": "2"}
    s = load_settings(environ=env, retries=None, strategy="latency")
    assert s.backoff == 3.0 and s.sources["backoff"] == str(cfg)  # file beats default
    assert s.retries == 2 and s.sources["retries"] == "HPCDIST_RETRIES"  # env beats file
    assert s.strategy == "latency" and s.sources["strategy"] == "argument"  # argument beats all
    assert s.timeout is None and "timeout" not in s.sources


def test_toml_with_hpcdist_table(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[hpcdist]\ntimeout = 30\nlog_level = "debug"\n')
    s = load_settings(environ={"HPCDIST_CONFIG": str(cfg)})
    assert s.timeout == 30.0 and s.log_level == "DEBUG"


def test_env_none_timeout():
    assert load_settings(environ={"HPCDIST_TIMEOUT": "none"}).timeout is None


def test_bad_config_names_file_and_line(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{\n "retries": 1,\n oops\n}')
    with pytest.raises(InputError) as info:
        load_settings(environ={"HPCDIST_CONFIG": str(cfg)})
    assert info.value.path == str(cfg) and info.value.line == 3
    assert str(info.value).startswith(f"{cfg}:3: not valid JSON")


def test_unknown_key_and_bad_type(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"retrys": 1}')
    with pytest.raises(InputError, match="unknown setting 'retrys'"):
        load_settings(environ={"HPCDIST_CONFIG": str(cfg)})
    with pytest.raises(InputError, match="retries='many' .*HPCDIST_RETRIES"):
        load_settings(environ={"HPCDIST_RETRIES": "many"})


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="cannot read config file"):
        load_settings(environ={"HPCDIST_CONFIG": str(tmp_path / "nope.json")})
