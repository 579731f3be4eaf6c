"""`.env` reading and writing agree with python-dotenv (issue 16).

python-dotenv is a test-only dependency (requirements-dev.txt): each case is written to a file
and `parse_env_file` must equal `dotenv.dotenv_values` for it, except the deliberate
differences `parse_env_text` documents, which are tested here too. The writer's values must
read back unchanged through both.
"""

from __future__ import annotations

import pytest

dotenv = pytest.importorskip("dotenv")

from secure_redis.envfile import parse_env_file, quote_env_value, render_secure_env  # noqa: E402

# (id, file bytes as text, expected) — expected is also what dotenv_values returns.
CASES = [
    ("double quotes", 'REDIS_PASSWORD="v"\n', {"REDIS_PASSWORD": "v"}),
    ("issue 16: double quotes, inline comment", 'REDIS_PASSWORD="v" # comment\n', {"REDIS_PASSWORD": "v"}),
    ("single quotes, inline comment", "A='v' # comment\n", {"A": "v"}),
    ("single quotes keep backslash-n", "A='a\\nb'\n", {"A": "a\\nb"}),
    ("single quotes unescape \\' and \\\\", "A='it\\'s \\\\ ok'\n", {"A": "it's \\ ok"}),
    ("double-quote escapes", 'A="l1\\nl2\\t\\"q\\" \\\\ end"\n', {"A": 'l1\nl2\t"q" \\ end'}),
    ("escaped backslash before quote", 'A="x\\\\" # c\n', {"A": "x\\"}),
    ("unknown escape kept", 'A="a\\qb"\n', {"A": "a\\qb"}),
    ("unquoted inline comment", "A=value # comment\n", {"A": "value"}),
    ("unquoted hash without space is value", "A=pa#ss\n", {"A": "pa#ss"}),
    ("hash right after = is value", "A=#notacomment\n", {"A": "#notacomment"}),
    ("space then hash after = is empty", "A= # comment\n", {"A": ""}),
    ("hash inside double quotes", 'A="a # b"\n', {"A": "a # b"}),
    ("hash inside single quotes", "A='a # b'\n", {"A": "a # b"}),
    ("export prefix", "export A=1\nexport  B='2'\n", {"A": "1", "B": "2"}),
    ("spaces around =", "A = 1\n  B\t=\t2\n", {"A": "1", "B": "2"}),
    ("empty values", 'A=\nB=""\nC=\'\'\n', {"A": "", "B": "", "C": ""}),
    ("KEY without = is unset", "A\nB=1\n", {"B": "1"}),
    ("multi-line double quotes", 'A="line1\nline2"\nB=3\n', {"A": "line1\nline2", "B": "3"}),
    ("multi-line single quotes", "A='l1\nl2'\n", {"A": "l1\nl2"}),
    ("trailing whitespace", "A=value   \t\nB='q'   \n", {"A": "value", "B": "q"}),
    ("inner spaces kept in unquoted value", "A=a b  c\n", {"A": "a b  c"}),
    ("CRLF line endings", "A=1\r\nB='2'\r\nC=\"x\"\r\n", {"A": "1", "B": "2", "C": "x"}),
    ("CRLF inside multi-line quotes", 'A="l1\r\nl2"\r\n', {"A": "l1\nl2"}),
    ("unicode", "A=pässwörd✓\nB=\"日本\"\n", {"A": "pässwörd✓", "B": "日本"}),
    ("BOM", "\ufeffA=1\n", {"A": "1"}),
    ("comments and blank lines", "# c\n\n   # indented\nA=1\n\n", {"A": "1"}),
    ("dollar without braces is literal", "A=pa$s\nB=\"$HOME\"\n", {"A": "pa$s", "B": "$HOME"}),
    ("unterminated brace is literal", "A=x${y\n", {"A": "x${y"}),
    ("later duplicate wins", "A=1\nA=2\n", {"A": "2"}),
    ("= inside value", "URL=rediss://h:6380/0?a=b\n", {"URL": "rediss://h:6380/0?a=b"}),
    ("single-quoted key", "'A'=1\n", {"A": "1"}),
    ("no final newline", "A=1", {"A": "1"}),
    ("quote inside unquoted value", "A=it's\n", {"A": "it's"}),
]


def write(tmp_path, text: str):
    path = tmp_path / ".env"
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reads_as_python_dotenv_does(tmp_path, text: str, expected: dict[str, str]) -> None:
    path = write(tmp_path, text)
    reference = {k: v for k, v in dotenv.dotenv_values(path).items() if v is not None}
    assert reference == expected, "the table is wrong about python-dotenv"
    assert parse_env_file(path) == expected


def test_key_without_equals_is_none_in_dotenv_and_absent_here(tmp_path) -> None:
    path = write(tmp_path, "A\n")
    assert dotenv.dotenv_values(path) == {"A": None}
    assert parse_env_file(path) == {}


@pytest.mark.parametrize("text", ["A=${HOME}\n", "A='pa${X:-d}ss'\n", 'A="${}"\n'])
def test_expansion_is_refused_not_performed(tmp_path, monkeypatch, text: str) -> None:
    """python-dotenv expands ${...} (interpolate=True by default), even in single quotes; a
    password is never silently rewritten from the environment here: the file is refused."""
    monkeypatch.setenv("HOME", "/somewhere")
    path = write(tmp_path, text)
    raw = dotenv.dotenv_values(path, interpolate=False)["A"]
    assert dotenv.dotenv_values(path)["A"] != raw  # python-dotenv does change it
    with pytest.raises(ValueError, match=r"\.env:1: A contains \$\{\.\.\.\}") as error:
        parse_env_file(path)
    assert "/somewhere" not in str(error.value)


@pytest.mark.parametrize("text", ["=nokey\n", 'A="unterminated\n', "A='x' junk\n", "A B=1\n"])
def test_lines_python_dotenv_skips_are_errors(tmp_path, text: str) -> None:
    """python-dotenv warns and skips a line it cannot parse; in a secrets file that is refused."""
    path = write(tmp_path, "OK=1\n" + text)
    assert "OK" in dotenv.dotenv_values(path)
    with pytest.raises(ValueError, match=r"\.env:2: not a KEY=VALUE line"):
        parse_env_file(path)


SECRETS = [
    "plainPassword123",
    'with"double"quotes',
    "with'single'quotes",
    "hash#inside",
    "space then # comment",
    " leading and trailing ",
    "dollar$sign and $HOME and ${unclosed",
    "back\\slash\\\\and\\n\\\"",
    "ends with backslash\\",
    "\"starts with quote",
    "'starts with single",
    "#starts with hash",
    "=starts with equals",
    "multi\nline\r\nvalue",
    "tab\tinside",
    "ünïcødé ✓",
    "",
    "!%^&*-_=+abcXYZ789",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_written_values_read_back_identically(tmp_path, secret: str) -> None:
    path = write(tmp_path, f"# c\nREDIS_PASSWORD={quote_env_value(secret)}\nNEXT=1\n")
    assert parse_env_file(path) == {"REDIS_PASSWORD": secret, "NEXT": "1"}
    assert dotenv.dotenv_values(path) == {"REDIS_PASSWORD": secret, "NEXT": "1"}


def test_writer_refuses_what_python_dotenv_would_expand() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        quote_env_value("pa${HOME}ss")


def test_generated_file_reads_back_through_both(tmp_path) -> None:
    options = {
        "password": "p@ss \"w#rd\" $x \\ 'q'",
        "encryption_key": "k" * 43 + "=",
        "redis_url": "rediss://cache.internal:6380/0",
        "acl_username": "app user",
        "certs_dir": str(tmp_path / "my certs #1"),
    }
    path = write(tmp_path, render_secure_env("production", **options))
    ours = parse_env_file(path)
    assert ours == dotenv.dotenv_values(path)
    assert ours["REDIS_PASSWORD"] == options["password"]
    assert ours["REDIS_ACL_USERNAME"] == "app user"
    assert ours["REDIS_TLS_CA_PATH"] == str(tmp_path / "my certs #1" / "ca.crt")
    assert ours["REDIS_TLS_MIN_VERSION"] == "1.3"


def test_generated_passwords_stay_unquoted(tmp_path) -> None:
    text = render_secure_env("development")
    line = next(line for line in text.splitlines() if line.startswith("REDIS_PASSWORD="))
    assert '"' not in line
    path = write(tmp_path, text)
    assert parse_env_file(path) == dotenv.dotenv_values(path)


def test_generated_files_source_in_a_shell_as_python_dotenv_reads_them(tmp_path) -> None:
    """The README's `set -a; . ./.env.secure; set +a` must give the app what python-dotenv and
    our parser read: a generated password once held `&`, which ended the shell assignment."""
    import hashlib
    import subprocess

    for n in range(40):
        path = write(tmp_path, render_secure_env("development"))
        expected = dotenv.dotenv_values(path)["REDIS_PASSWORD"]
        assert expected and parse_env_file(path)["REDIS_PASSWORD"] == expected
        sourced = subprocess.run(
            ["bash", "-c", 'set -a; . "$1" >/dev/null 2>&1; set +a; printf %s "$REDIS_PASSWORD" | sha256sum', "_", str(path)],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.split()[0]
        assert sourced == hashlib.sha256(expected.encode()).hexdigest(), f"file {n} sources differently"
