"""Configuration: environment variables over the user TOML file; clear errors; a hidden token."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from xlfuncs.config import Config, default_config_path, load_config
from xlfuncs.errors import ConfigError, XlfuncsError

TOKEN = "tok-3f9a.SECRET_value"
URL = "https://fund-api.example.edu"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, toml: str | None = None, **env: str) -> Config:
    """load_config with only ``env`` and (when given) a config file in tmp_path."""
    environ = {"HOME": str(tmp_path / "home"), **env}
    path = write(tmp_path, toml) if toml is not None else None
    return load_config(environ, path)


# --------------------------------------------------------------------------- sources


def test_environment_only(tmp_path):
    cfg = load(tmp_path, XLFUNCS_API_URL=URL + "/", XLFUNCS_FUND="quant")
    assert cfg == Config(base_url=URL, fund="quant")
    assert cfg.base_url == URL  # trailing slash dropped
    assert (cfg.token, cfg.timeout, cfg.retries, cfg.backoff) == (None, (3.05, 30.0), 3, 0.5)


def test_file_only(tmp_path):
    cfg = load(tmp_path, f"""
        [api]
        base_url = "{URL}"
        fund = "brigham_capital"
        token = "{TOKEN}"
        timeout = [2, 45]
        retries = 5
        backoff = 0.25

        [other_tool]   # other sections are someone else's business
        anything = 1
    """)
    assert cfg == Config(base_url=URL, fund="brigham_capital", token=TOKEN, timeout=(2.0, 45.0),
                         retries=5, backoff=0.25)


def test_environment_overrides_the_file_key_by_key(tmp_path):
    toml = f"""
        [api]
        base_url = "http://localhost:8000"
        fund = "grad"
        token = "{TOKEN}"
        timeout = 10
    """
    cfg = load(tmp_path, toml, XLFUNCS_API_URL=URL, XLFUNCS_TIMEOUT="1.5,20")
    assert cfg.base_url == URL and cfg.timeout == (1.5, 20.0)
    assert cfg.fund == "grad" and cfg.token == TOKEN  # from the file
    cfg = load(tmp_path, toml, XLFUNCS_FUND="quant_paper", XLFUNCS_API_TOKEN="other")
    assert (cfg.base_url, cfg.fund, cfg.token, cfg.timeout) == (
        "http://localhost:8000", "quant_paper", "other", (3.05, 10.0))


def test_empty_environment_variables_count_as_unset(tmp_path):
    cfg = load(tmp_path, f'[api]\nbase_url = "{URL}"\nfund = "grad"\n',
               XLFUNCS_API_URL="", XLFUNCS_FUND="  ", XLFUNCS_API_TOKEN="", XLFUNCS_TIMEOUT="")
    assert (cfg.base_url, cfg.fund, cfg.token, cfg.timeout) == (URL, "grad", None, (3.05, 30.0))


def test_xlfuncs_config_names_the_file(tmp_path):
    path = write(tmp_path, f'[api]\nbase_url = "{URL}"\n')
    assert load_config({"XLFUNCS_CONFIG": str(path)}).base_url == URL


def test_the_default_file_is_read(tmp_path):
    home = tmp_path / "home"
    (home / ".xlfuncs").mkdir(parents=True)
    (home / ".xlfuncs" / "config.toml").write_text(f'[api]\nbase_url = "{URL}"\n')
    assert load_config({"HOME": str(home)}, None).base_url == URL


def test_a_missing_default_file_is_fine(tmp_path):
    assert load(tmp_path, XLFUNCS_API_URL=URL).base_url == URL


def test_a_named_file_must_exist(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"the config file {missing} does not exist"):
        load_config({"XLFUNCS_CONFIG": str(missing), "XLFUNCS_API_URL": URL})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"XLFUNCS_API_URL": URL}, missing)


def test_default_config_path(tmp_path):
    assert default_config_path({"XLFUNCS_CONFIG": "/etc/x.toml"}) == Path("/etc/x.toml")
    assert default_config_path({"HOME": "/home/ann"}, windows=False) == Path(
        "/home/ann/.xlfuncs/config.toml")
    win = default_config_path({"APPDATA": "C:/Users/ann/AppData/Roaming"}, windows=True)
    assert win == Path("C:/Users/ann/AppData/Roaming/xlfuncs/config.toml")
    assert default_config_path({}, windows=True).parts[-4:] == (
        "AppData", "Roaming", "xlfuncs", "config.toml")


# --------------------------------------------------------------------------- errors


def test_no_base_url_says_how_to_set_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[api]\nfund = "quant"\n')
    path = tmp_path / "config.toml"
    assert str(info.value) == (
        "no fund API URL is configured: set the XLFUNCS_API_URL environment variable "
        "(e.g. XLFUNCS_API_URL=https://fund-api.example.edu) or add "
        f'base_url = "https://..." under [api] in {path}'
    )
    assert isinstance(info.value, XlfuncsError)


def test_no_base_url_and_no_file_names_the_default_path(tmp_path):
    with pytest.raises(ConfigError, match=r"under \[api\] in .*home/\.xlfuncs/config\.toml$"):
        load(tmp_path)


def test_malformed_toml_names_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[api]\nbase_url = "https://x\nfund = "quant"\n')
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'config.toml'} is not valid TOML: ")
    assert "line 2" in message


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'[api]\nbase_url = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="is not valid TOML: it is not UTF-8 text"):
        load_config({}, path)


@pytest.mark.parametrize(("line", "message"), [
    ("base_url = 5", "[api] base_url must be text (an http:// or https:// URL), not the number 5"),
    ('base_url = "fund-api.example.edu"',
     "[api] base_url must be an http:// or https:// URL such as https://fund-api.example.edu, "
     "not 'fund-api.example.edu'"),
    ('base_url = "ftp://x.org"', "[api] base_url must be an http:// or https:// URL"),
    ('base_url = "https://ann:pw@x.org"',
     "[api] base_url must not contain a user name or password; set the token with "
     "XLFUNCS_API_TOKEN or token under [api]"),
    ('base_url = "https://x.org/?key=1"', "[api] base_url must not have a ?query or #fragment"),
    ("fund = 1", "[api] fund must be a fund name such as 'undergrad', not the number 1"),
    ('timeout = "abc"',
     "[api] timeout must be a number of seconds or [connect, read], not text 'abc'"),
    ("timeout = [1, 2, 3]",
     "[api] timeout must be a number of seconds or [connect, read]; the array has 3 items"),
    ("timeout = 0", "[api] timeout must be a number of seconds or [connect, read] greater than 0"),
    ("timeout = [1, -2]", "[api] timeout (read) must be a number of seconds greater than 0"),
    ("timeout = true", "[api] timeout must be a number of seconds or [connect, read], "
                       "not the boolean true"),
    ('retries = "3"', "[api] retries must be a whole number from 0 to 10, not text '3'"),
    ("retries = 11", "[api] retries must be a whole number from 0 to 10, not the number 11"),
    ("backoff = -1", "[api] backoff must be from 0 to 60 seconds, not -1"),
    ("token = 12345", "[api] token must be text"),
    ('tokn = "x"', "[api] has an unknown key 'tokn'; the keys are base_url, fund, token, "
                   "timeout, deadline, retries, backoff"),
])
def test_wrong_types_name_the_file_and_key(tmp_path, line, message):
    url = "" if line.startswith("base_url") else f'base_url = "{URL}"\n'
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[api]\n{url}{line}\n")
    assert str(info.value).startswith(f"{tmp_path / 'config.toml'} {message}")


def test_api_must_be_a_table(tmp_path):
    with pytest.raises(ConfigError, match=r"config.toml: api must be a table \(\[api\]\), "
                                          "not the number 3"):
        load(tmp_path, "api = 3\n")


@pytest.mark.parametrize(("env", "message"), [
    ({"XLFUNCS_API_URL": "localhost:8000"},
     "XLFUNCS_API_URL must be an http:// or https:// URL such as https://fund-api.example.edu, "
     "not 'localhost:8000'"),
    ({"XLFUNCS_API_URL": "http://x:99999"}, "XLFUNCS_API_URL must be an http:// or https:// URL"),
    ({"XLFUNCS_TIMEOUT": "abc"},
     "XLFUNCS_TIMEOUT must be seconds, e.g. 30 (read) or 3.05,30 (connect,read), not 'abc'"),
    ({"XLFUNCS_TIMEOUT": "-1"}, "XLFUNCS_TIMEOUT must be a number of seconds or [connect, read] "
                                "greater than 0, not -1.0"),
    ({"XLFUNCS_TIMEOUT": "1,2,3"}, "XLFUNCS_TIMEOUT must be a number of seconds or "
                                   "[connect, read]; the array has 3 items"),
])
def test_bad_environment_variables_are_named(tmp_path, env, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **{"XLFUNCS_API_URL": URL, **env})
    assert str(info.value).startswith(message)


def test_timeout_from_the_environment(tmp_path):
    assert load(tmp_path, XLFUNCS_API_URL=URL, XLFUNCS_TIMEOUT="60").timeout == (3.05, 60.0)
    assert load(tmp_path, XLFUNCS_API_URL=URL, XLFUNCS_TIMEOUT=" 1 , 2.5 ").timeout == (1.0, 2.5)


def test_config_checks_its_fields():
    with pytest.raises(ConfigError, match=r"^base_url must be an http"):
        Config(base_url="example.com")
    with pytest.raises(ConfigError, match=r"^retries must be"):
        Config(base_url=URL, retries=-1)
    with pytest.raises(ConfigError, match=r"^timeout \(connect\) must be"):
        Config(base_url=URL, timeout=(0, 1))
    cfg = Config(base_url=URL, timeout=[1, 2])  # normalised to a tuple of floats
    assert cfg.timeout == (1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.base_url = "http://other"


# --------------------------------------------------------------------------- the token


def test_the_repr_hides_the_token(tmp_path):
    cfg = load(tmp_path, XLFUNCS_API_URL=URL, XLFUNCS_API_TOKEN=f"  {TOKEN}  ")
    assert cfg.token == TOKEN
    for text in (repr(cfg), str(cfg), f"{cfg}", f"{cfg!r}"):
        assert TOKEN not in text
        assert "token='***'" in text
    assert "token=None" in repr(Config(base_url=URL))


@pytest.mark.parametrize("bad", [f"{TOKEN} extra", f"{TOKEN}\nX-Other: 1", f"{TOKEN}é"])
def test_a_malformed_token_is_refused_without_showing_it(tmp_path, bad):
    with pytest.raises(ConfigError) as info:
        Config(base_url=URL, token=bad)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert "token contains a space, a control or a non-ASCII character" in str(info.value)


def test_a_file_token_error_does_not_show_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'[api]\nbase_url = "{URL}"\ntoken = "{TOKEN} {TOKEN}"\n')
    assert TOKEN not in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 'config.toml'} [api] token contains a space")


def test_config_imports_neither_requests_nor_xlwings():
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('xlwings', 'requests', 'urllib3'):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
from xlfuncs.config import load_config
cfg = load_config({'XLFUNCS_API_URL': 'http://localhost:8000', 'HOME': '/nonexistent'}, None)
print(cfg.base_url)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "http://localhost:8000"


@pytest.mark.parametrize(("line", "timeout"), [
    ('timeout = "3,30"', (3.0, 30.0)),  # the form the README shows for XLFUNCS_TIMEOUT
    ('timeout = " 1.5 , 20 "', (1.5, 20.0)),
    ('timeout = "45"', (3.05, 45.0)),
    ("timeout = [3, 30]", (3.0, 30.0)),
    ("timeout = 30", (3.05, 30.0)),
])
def test_timeout_text_in_the_file(tmp_path, line, timeout):
    assert load(tmp_path, f'[api]\nbase_url = "{URL}"\n{line}\n').timeout == timeout


def test_bad_timeout_text_in_the_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'[api]\nbase_url = "{URL}"\ntimeout = "3,-1"\n')
    assert str(info.value).startswith(f"{tmp_path / 'config.toml'} [api] timeout (read) must be")


# --------------------------------------------------------------------------- limits, the deadline


@pytest.mark.parametrize(("env", "toml", "message"), [
    ({"XLFUNCS_TIMEOUT": "1e300"}, None,
     "XLFUNCS_TIMEOUT must be at most 300 seconds (a refresh must not hang Excel), not 1e+300"),
    ({"XLFUNCS_TIMEOUT": "3,301"}, None, "XLFUNCS_TIMEOUT (read) must be at most 300 seconds"),
    ({"XLFUNCS_TIMEOUT": "inf"}, None, "XLFUNCS_TIMEOUT must be at most 300 seconds"),
    ({"XLFUNCS_TIMEOUT": "nan"}, None,
     "XLFUNCS_TIMEOUT must be a number of seconds or [connect, read] greater than 0, not nan"),
    ({}, "timeout = [3, 1e300]", "[api] timeout (read) must be at most 300 seconds"),
    ({}, "timeout = 1" + "0" * 400,
     "[api] timeout must be at most 300 seconds (a refresh must not hang Excel), "
     "not a number with 401 digits"),
    ({"XLFUNCS_DEADLINE": "1e300"}, None, "XLFUNCS_DEADLINE must be at most 300 seconds"),
    ({"XLFUNCS_DEADLINE": "soon"}, None, "XLFUNCS_DEADLINE must be seconds, e.g. 60, not 'soon'"),
    ({"XLFUNCS_DEADLINE": "0"}, None,
     "XLFUNCS_DEADLINE must be a number of seconds greater than 0, not 0.0"),
    ({}, 'deadline = "60"', "[api] deadline must be a number of seconds, not text '60'"),
    ({}, "deadline = 301", "[api] deadline must be at most 300 seconds"),
])
def test_timeouts_and_the_deadline_have_a_ceiling(tmp_path, env, toml, message):
    file = None if toml is None else f'[api]\nbase_url = "{URL}"\n{toml}\n'
    with pytest.raises(ConfigError) as info:
        load(tmp_path, file, **{"XLFUNCS_API_URL": URL, **env})
    text = str(info.value)
    if toml is not None:
        text = text.removeprefix(f"{tmp_path / 'config.toml'} ")
    assert text.startswith(message), text
    assert "\n" not in text


def test_the_deadline(tmp_path):
    assert load(tmp_path, XLFUNCS_API_URL=URL).deadline == 60.0
    toml = f'[api]\nbase_url = "{URL}"\ndeadline = 20\n'
    assert load(tmp_path, toml).deadline == 20.0
    assert load(tmp_path, toml, XLFUNCS_DEADLINE=" 5.5 ").deadline == 5.5
    assert Config(base_url=URL, deadline=300).deadline == 300.0
    with pytest.raises(ConfigError, match=r"^deadline must be a number of seconds greater than"):
        Config(base_url=URL, deadline=-1)
    assert "deadline=60.0" in repr(Config(base_url=URL))


def test_one_number_in_xlfuncs_timeout_keeps_the_connect_timeout_of_the_file(tmp_path):
    toml = f'[api]\nbase_url = "{URL}"\ntimeout = "3,30"\n'
    assert load(tmp_path, toml, XLFUNCS_TIMEOUT="5").timeout == (3.0, 5.0)
    assert load(tmp_path, toml, XLFUNCS_TIMEOUT="1,2").timeout == (1.0, 2.0)
    assert load(tmp_path, XLFUNCS_API_URL=URL, XLFUNCS_TIMEOUT="5").timeout == (3.05, 5.0)


@pytest.mark.parametrize("url", ["https://fund api.example.edu", "https://x.org/a b",
                                 "https://x.org/\tv2"])
def test_a_url_with_a_space_is_refused(tmp_path, url):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, XLFUNCS_API_URL=url)
    assert str(info.value).startswith("XLFUNCS_API_URL must not contain a space or a control "
                                      "character (write a space as %20)")
