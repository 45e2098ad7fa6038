"""No secret is stored (safety contract item 6).

Unit tests of the redaction rules, then one real ``wattwise run`` with secrets planted in
every captured place (argv in both option forms, opted-in variables, the remote URL's
user-info and query, a committed-then-modified file so they land in the diff), after which
the raw bytes of everything wattwise wrote (the ``.wattwise/`` folder: ledger, WAL, spool;
``show --json``; reports; exports) are searched for every planted value.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from repro_support import git, init_repo

from wattwise.environment import _redact
from wattwise.environment._redact import TOKEN_PATTERNS, is_secret_option, redact_text_counted
from wattwise.repro import REDACTED, allowed_variables, capture, redact_argv, redact_text

# Built from parts so that this file itself holds no token a scanner would flag.
GHP = "ghp" + "_" + "R4nd0mT0k3nF0rTh3T3st5uite0123456789"
GLPAT = "glpat" + "-" + "xYz0123456789AbCdEfGhIj"
AKIA = "AKIA" + "QWERTYUIOPASDFGH"
SLACK = "xoxb" + "-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUv"
OPENAI = "sk" + "-proj-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
HF = "hf" + "_" + "QwErTyUiOpAsDfGhJkLzXcVbNm012345"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
STRIPE = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
NPM = "npm" + "_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
GHPAT = "github" + "_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"


def test_option_values_are_redacted_in_both_forms_any_case() -> None:
    argv = [
        "python", "train.py", "--api-key=K1", "--password", "P1", "--Token", "T1",
        "--hf_token=T2", "--db-passwd", "P2", "--client-secret=S1", "--AWS_SECRET_KEY", "S2",
        "--auth", "A1", "--credentials=C1", "--secret", "S3", "--wandb-key", "K2",
    ]  # fmt: skip
    out = redact_argv(argv)
    assert len(out) == len(argv)  # words stay in place
    for secret in ("K1", "P1", "T1", "T2", "P2", "S1", "S2", "A1", "C1", "S3", "K2"):
        assert secret not in out
    assert out[2] == "--api-key=***" and out[3:5] == ["--password", REDACTED]
    assert out[7] == "--hf_token=***"


def test_options_that_only_look_alike_keep_their_values() -> None:
    argv = ["--max-tokens", "512", "--tokenizer", "bert", "--sort-key", "name",
            "--num_keys", "3", "max_tokens=4", "lr=0.1", "--token-file", "t.txt"]  # fmt: skip
    assert redact_argv(argv) == argv
    assert is_secret_option("--api-key") and is_secret_option("--HF_TOKEN=x")
    assert not is_secret_option("--tokenizer") and not is_secret_option("-1")


def test_a_flag_before_another_option_does_not_eat_it() -> None:
    assert redact_argv(["--token", "--verbose"]) == ["--token", "--verbose"]
    assert redact_argv(["--token=", "x"]) == ["--token=", "x"]


def test_variables_urls_and_token_formats_in_words() -> None:
    argv = [
        "HF_TOKEN=abc123", "db.password=hunter22", "https://u:PASS1@h.example/x",
        "https://h.example/x?private_token=QT1&page=2", "s3://b/k?X-Amz-Signature=SIG1",
        f"https://{GHP}@github.com/o/r.git", GLPAT, f"key={AKIA}",
    ]  # fmt: skip
    out = redact_argv(argv)
    joined = " ".join(out)
    for secret in ("abc123", "hunter22", "PASS1", "QT1", "SIG1", GHP, GLPAT, AKIA):
        assert secret not in joined
    assert out[2] == "https://u:***@h.example/x"
    assert out[3] == "https://h.example/x?private_token=***&page=2"  # other parameters kept


@pytest.mark.parametrize(
    "secret",
    [GHP, GLPAT, AKIA, SLACK, OPENAI, HF, GOOGLE, STRIPE, NPM, GHPAT, JWT],
)
def test_token_formats_are_found_anywhere_in_text(secret: str) -> None:
    text = f"note: the value ({secret}) was pasted here, and more text follows"
    out = redact_text(text)
    assert secret not in out and REDACTED in out
    assert out.startswith("note: the value (") and out.endswith("more text follows")


#: One sample per entry of TOKEN_PATTERNS, in order (built from parts, see above).
TOKEN_SAMPLES = (
    AKIA, GHP, GHPAT, GLPAT, "GR1348941" + "a1B2c3D4e5F6g7H8i9J0", SLACK,
    "https://hooks.slack.com/services/" + "T0000/B0000/XXXXXXXX", OPENAI, STRIPE,
    "whsec" + "_" + "AbCdEfGhIjKlMnOpQrStUvWx12", JWT, HF, GOOGLE,
    "ya29" + ".a0AfH6SMBx1234567890abcdefg", NPM, "//registry.npmjs.org/:_authToken=" + "abc-123",
    "pypi" + "-AgEIcHlwaS5vcmc" + "A" * 60, "SG" + "." + "a" * 22 + "." + "b" * 43,
    "SK" + "0123456789abcdef" * 2, "0123456789abcdef" * 2 + "-us12",
    "sq0csp" + "-" + "A" * 43, "EAAA" + "a" * 60, "bot 123456789" + ":" + "A" * 35,
    "AccountKey=" + "a" * 44 + "==", "key=AKC" + "a1b2c3d4e5f6", "dop" + "_v1_" + "a" * 64,
    "dapi" + "0123456789abcdef" * 2, "shpat" + "_" + "0123456789abcdef" * 2,
    "r8" + "_" + "A" * 37,
)  # fmt: skip


def test_every_token_pattern_finds_its_sample_through_its_hint() -> None:
    assert len(TOKEN_SAMPLES) == len(TOKEN_PATTERNS) == len(_redact._HINTS)
    for index, sample in enumerate(TOKEN_SAMPLES):
        what, data = TOKEN_PATTERNS[index][0], f"x {sample} y".encode()
        assert any(hint in data for hint in _redact._HINTS[index]), what  # else never run
        pattern, group, back = _redact._token(index)
        found = pattern.search(data)
        assert found is not None, what
        assert data[found.start(group) - back : found.end(group)] in sample.encode(), what
        redacted, count = redact_text_counted(f"x {sample} y")
        assert count >= 1 and REDACTED in redacted, what


def test_text_rules_assignments_headers_pem_and_harmless_text() -> None:
    text = (
        'API_KEY = "s3cr3t-value"\n'
        "DB_PASSWORD=plainpass99\n"
        "Authorization: Bearer abcdefgh12345678\n"
        "curl -H x --token tokval123 https://h/x?access_token=at99&sig=sg77\n"
        "-----BEGIN RSA PRIVATE KEY-----\n"
        f"+{PEM_BODY}\n"
        f"{PEM_BODY}\n"
        "-----END RSA PRIVATE KEY-----\n"
        'tokenizer = "bert-base"\nmax_tokens = 512\n'
    )
    out = redact_text(text)
    for secret in ("s3cr3t-value", "plainpass99", "abcdefgh12345678", "tokval123", "at99",
                   "sg77", PEM_BODY):  # fmt: skip
        assert secret not in out
    assert "+***\n***\n-----END RSA PRIVATE KEY-----" in out  # diff line marks kept
    assert 'tokenizer = "bert-base"' in out and "max_tokens = 512" in out


def test_opted_in_variable_values_are_redacted_and_secret_names_dropped() -> None:
    env = {
        "WATTWISE_CAPTURE_ENV": "DATABASE_URL,NOTE,HF_TOKEN",
        "DATABASE_URL": "postgres://app:DbPass77@db.example/prod",
        "NOTE": f"uses {HF}",
        "HF_TOKEN": HF,
    }
    found = allowed_variables(env)
    assert found == {"DATABASE_URL": "postgres://app:***@db.example/prod", "NOTE": "uses ***"}


def test_remote_url_loses_user_info_and_credential_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = init_repo(Path.cwd() / "repo", monkeypatch)
    url = "https://oauth2:RemotePass1@gitlab.example.com/g/p.git?private_token=RemoteTok2"
    git(repo, "remote", "add", "origin", url)
    remote = capture(repo).record["code"]["remote"]
    assert remote == "https://gitlab.example.com/g/p.git?private_token=***"


# -- end to end --------------------------------------------------------------------------

SCRIPT = """
import sys
import wattwise
wattwise.log(step=0, acc=0.5)
print("job ran with", len(sys.argv) - 1, "arguments")
"""

CONFIG_BEFORE = 'SERVICE = "https://api.example.com"\nAPI_TOKEN = "placeholder"\n'


def _planted() -> tuple[list[str], dict[str, str], str, str, dict[str, str]]:
    """(argv, variables, remote URL, modified config file, every planted value by form)."""
    values = {
        "argv --api-key=V": "ArgvApiKey0001",
        "argv --password V": "ArgvPassword0002",
        "argv --hf-token V": HF,
        "argv --db_passwd=V": "ArgvDbPasswd0003",
        "argv --client-secret V": "ArgvClientSecret0004",
        "argv NAME=V": "ArgvEnvStyle0005",
        "argv URL user-info": "ArgvUrlPass0006",
        "argv URL ?sig=": "ArgvUrlSig0007",
        "argv bare GitHub token": GHP,
        "argv bare OpenAI key": OPENAI,
        "env DATABASE_URL user-info": "EnvDbPass0008",
        "env SERVICE_URL ?access_token=": "EnvAccessTok0009",
        "env value with a Slack token": SLACK,
        "remote user-info": "RemotePass0010",
        "remote ?private_token=": "RemotePrivTok0011",
        "diff quoted assignment": "DiffAssigned0012",
        "diff AWS key id": AKIA,
        "diff Google key": GOOGLE,
        "diff JWT": JWT,
        "diff PEM body": PEM_BODY,
        "diff GitLab token": GLPAT,
        "diff Stripe key": STRIPE,
        "diff shell option": "DiffShellTok0013",
    }
    v = values
    argv = [
        sys.executable, "script.py", f"--api-key={v['argv --api-key=V']}",
        "--password", v["argv --password V"], "--hf-token", v["argv --hf-token V"],
        f"--db_passwd={v['argv --db_passwd=V']}",
        "--client-secret", v["argv --client-secret V"],
        f"SECRET_KEY={v['argv NAME=V']}",
        f"https://user:{v['argv URL user-info']}@data.example.com/set",
        f"https://data.example.com/blob?sig={v['argv URL ?sig=']}&se=2030",
        v["argv bare GitHub token"], v["argv bare OpenAI key"],
    ]  # fmt: skip
    env = {
        "WATTWISE_CAPTURE_ENV": "DATABASE_URL,SERVICE_URL,TEAM_NOTE",
        "DATABASE_URL": f"postgres://app:{v['env DATABASE_URL user-info']}@db.example/prod",
        "SERVICE_URL": "https://svc.example/v1?access_token="
        + v["env SERVICE_URL ?access_token="],
        "TEAM_NOTE": f"bot uses {v['env value with a Slack token']}",
    }
    remote = (
        f"https://oauth2:{v['remote user-info']}@gitlab.example.com/g/p.git"
        f"?private_token={v['remote ?private_token=']}"
    )
    config = (
        'SERVICE = "https://api.example.com"\n'
        f'API_TOKEN = "{v["diff quoted assignment"]}"\n'
        f"AWS_ID = '{v['diff AWS key id']}'\n"
        f"MAPS = '{v['diff Google key']}'\n"
        f"SESSION = '{v['diff JWT']}'\n"
        f"GITLAB = '{v['diff GitLab token']}'\n"
        f"STRIPE = '{v['diff Stripe key']}'\n"
        f"RUN = 'python fetch.py --token {v['diff shell option']}'\n"
        "KEY = '''\n-----BEGIN PRIVATE KEY-----\n"
        f"{v['diff PEM body']}\n-----END PRIVATE KEY-----\n'''\n"
    )
    return argv, env, remote, config, values


def _wattwise(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", *args], capture_output=True, timeout=180, env=env,
        check=False,
    )  # fmt: skip


def _planted_project(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """A git project with every secret planted: (argv, the job's environment, values)."""
    repo = init_repo(Path.cwd(), monkeypatch)
    argv, variables, remote, config, values = _planted()
    assert len(values) >= 20
    git(repo, "remote", "add", "origin", remote)
    (repo / "script.py").write_text(SCRIPT)
    (repo / "config.py").write_text(CONFIG_BEFORE)
    git(repo, "add", "script.py", "config.py")
    git(repo, "commit", "-q", "-m", "job")
    (repo / "config.py").write_text(config)  # the secrets land in the uncommitted diff
    return argv, {**os.environ, **variables}, values


def _leaks(values: dict[str, str], written: dict[str, bytes]) -> list[str]:
    return [
        f"{form} in {where}"
        for form, value in values.items()
        for where, blob in written.items()
        if value.encode() in blob
    ]


def test_no_planted_secret_reaches_any_byte_wattwise_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, env, values = _planted_project(monkeypatch)
    ran = _wattwise("run", "--", *argv, env=env)
    assert ran.returncode == 0, ran.stderr.decode()
    # The job saw its real arguments.
    assert f"job ran with {len(argv) - 2} arguments".encode() in ran.stdout
    listed = _wattwise("runs", "--json", env=env)
    run_id = listed.stdout.decode().split('"id": "')[1][:8]

    written: dict[str, bytes] = {}
    shown = _wattwise("show", run_id, "--json", env=env)
    assert shown.returncode == 0, shown.stderr.decode()
    written["show --json"] = shown.stdout
    assert b'"redactions"' in shown.stdout  # the diff was stored, redacted
    for name in ("r.html", "r.md", "r.json"):
        made = _wattwise("report", run_id, "-o", name, env=env)
        assert made.returncode == 0, made.stderr.decode()
        written[f"report -o {name}"] = Path(name).read_bytes()
    for fmt, name in (("hf-card", "card.md"), ("codecarbon-csv", "emissions.csv")):
        made = _wattwise("export", run_id, "--format", fmt, "-o", name, env=env)
        assert made.returncode == 0, made.stderr.decode()
        written[f"export {fmt}"] = Path(name).read_bytes()
    # Raw bytes of the folder as it is (WAL included), then after a checkpoint.
    for path in sorted(Path(".wattwise").rglob("*")):
        if path.is_file():
            written[str(path)] = path.read_bytes()
    conn = sqlite3.connect(".wattwise/ledger.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    written["ledger.db after checkpoint"] = Path(".wattwise/ledger.db").read_bytes()
    assert any(b"git-diff" in blob for blob in written.values())

    leaks = _leaks(values, written)
    assert sorted({leak.split(" in ")[0] for leak in leaks}) == [], leaks


def test_no_planted_secret_reaches_the_spool_when_the_ledger_is_damaged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, env, values = _planted_project(monkeypatch)
    ledger = Path(".wattwise/ledger.db")
    ledger.write_bytes(os.urandom(8192))  # every write is refused: records go to the spool
    env["XDG_STATE_HOME"] = str(Path.cwd() / "state")
    ran = _wattwise("run", "--", *argv, env=env)
    assert ran.returncode == 0, ran.stderr.decode()
    assert f"job ran with {len(argv) - 2} arguments".encode() in ran.stdout
    written = {
        str(path): path.read_bytes()
        for folder in (Path(".wattwise"), Path("state"))
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    assert any("spool" in where for where in written), sorted(written)
    assert any(b'"argv"' in blob for blob in written.values())  # the record went there
    leaks = _leaks(values, written)
    assert sorted({leak.split(" in ")[0] for leak in leaks}) == [], leaks
