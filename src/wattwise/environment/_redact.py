"""Secrets out of everything a run records: argv, variables, git remotes, the diff.

Redaction happens in the capturing process, before anything is written, so the ledger,
the spool, reports and exports only ever see ``***`` where a secret was. The rules:

* **Options**: the value of an option whose name ends in a secret word (``--api-key``,
  ``--token``, ``--hf-token``, ``--password``, ``--db-passwd``, ``--client-secret``,
  ``--auth``, ``--credentials``, any ``--*-key`` but field names such as ``--sort-key``),
  in both ``--opt=value`` and ``--opt value`` forms, any case, ``_`` or ``-``; ``NAME=value``
  words whose name ends in a secret word (``HF_TOKEN=...``, ``db.password=...``).
* **Assignments in text**: a quoted value given to such a name (``api_key = "..."``,
  ``"password": "..."``), a bare one in environment style (``DB_PASSWORD=...``) or YAML
  (``token: ...``) unless it reads as code (``token = args.token``), ``--token VALUE`` in
  a shell line, ``Authorization:`` headers, private-key PEM bodies.
* **URLs**: the password of ``scheme://user:PASS@host``, a bare token as user
  (``https://TOKEN@host``), and query parameters named like credentials (``token``,
  ``key``, ``sig``, ``signature``, ``private_token``, ``access_token``, ``password``,
  ``secret``, ``X-Amz-Signature``, ``X-Amz-Credential`` ...).
* **Token formats** anywhere in text (:data:`TOKEN_PATTERNS`): those of the
  ``detect-secrets`` plugins (AWS, GitHub, GitLab, Slack, OpenAI, Stripe, JWT, npm, PyPI,
  SendGrid, Twilio, Mailchimp, Square, Telegram, Azure storage, Artifactory), ported here
  because the package costs 0.25 s to import (it imports ``requests``) and reports values,
  not positions; plus formats it lacks (Hugging Face ``hf_``, Google ``AIza``/``ya29.``,
  GitHub ``github_pat_``, npm ``npm_``, Anthropic and OpenAI project keys, Stripe webhook
  secrets, DigitalOcean, Databricks, Shopify, Replicate).

The rules err towards redacting: a value lost from the record costs less than a secret
kept in it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

#: What a secret is replaced with.
REDACTED = "***"

# Names (options, variables, keys) whose last word says they hold a secret.
_SECRET_WORDS = (
    "password|passwd|passphrase|pwd|pass|secret|secrets|token|apikey|api-key|key|auth"
    "|authorization|credential|credentials|cookie|bearer|signature|sig|dsn|private-key"
)
_SECRET_NAME = rf"(?:^|-)(?:{_SECRET_WORDS})$"
# Option names ending in "-key" that name a field, not a secret (``--sort-key``).
_HARMLESS_KEY_OPTIONS = frozenset(
    {"sort-key", "metric-key", "monitor-key", "label-key", "target-key", "input-key",
     "text-key", "image-key", "group-key", "partition-key", "join-key", "dict-key",
     "hotkey", "cache-key", "primary-key", "foreign-key", "output-key", "column-key"}
)  # fmt: skip
_VARIABLE = r"(?s)^([A-Za-z_][A-Za-z0-9_.]*)=(.+)$"
_URL_USERINFO = r"^([A-Za-z][\w+.-]*://)[^/@\s]*@"

# The scanner works on bytes: a diff is bytes, and ``bytes.lower()`` keeps every offset,
# so case-insensitive rules run on a lowered copy without re.IGNORECASE (ten times slower
# in CPython's engine). Each pattern starts with a literal where it can, which lets the
# engine jump to candidates (about 1 ms per MB each, against 40 ms for a leading ``\b``).
_WORD = (
    rb"(?:password|passwd|passphrase|pwd|pass|secrets?|token|apikey|key|auth|authorization"
    rb"|credentials?|cookie|bearer|signature|sig|dsn)"
)
# On the lowered text, in one pass: a secret word ending a name, then its value: quoted
# after ``=`` or ``:`` (``api_key = "..."``, ``"token": "..."``: group 3), bare after ``=``
# (``HF_TOKEN=...``: 4) or ``: `` (YAML: 5), or after blanks when the name is an option
# (``--token VALUE`` in a shell line: 6). A bare value followed by ``(``, ``[``, ``.`` or a
# word character is code, not a secret.
_ASSIGNED = (
    rb"(" + _WORD + rb""")(?:["']?[ \t]*(?::=|=|:)[ \t]*(["'])([^"'\s{}$<>]{4,})\2"""
    rb"""|=([^\s"'&;,(){}\[\]<>$]{4,})(?![(\[\w.])"""
    rb"""|:[ \t]+([^\s"'&;,(){}\[\]<>$#]{4,})(?![(\[\w.])"""
    rb"""|[ \t]+(?!-)["']?([^\s"']+))"""
)
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_.-")
# Names that are a secret word alone but, in code and prose, mostly are not (``key=``,
# ``signature:``): in text they need a qualifier (``api_key``, ``hf_token`` ...).
_BARE_WORDS = frozenset(
    {"key", "sig", "signature", "auth", "pass", "cookie", "dsn", "bearer", "authorization"}
)
_IDENTIFIERS = rb"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*\Z"
_LITERALS = frozenset({b"none", b"true", b"false", b"null", b"self"})
_AUTH_HEADER = (
    rb"""authorization["']?[ \t]*[:=][ \t]*["']?(?:(?:bearer|basic|token|digest)[ \t]+)?"""
    rb"([a-z0-9._~+/=-]{8,})"
)
_URL_PASSWORD = rb"""://[^\s/@:"'<>]*:([^\s/@"'<>]+)@"""
_URL_USER_TOKEN = rb"""https?://([^\s/@:"'<>]{16,})@"""
_QUERY_PARAM = (
    rb"[?&;#]([\w.-]*?(?:token|key|secret|password|passwd|pwd|signature|credential|auth)"
    rb"|sig)=([^&#\s\"'<>]+)"
)
_PEM = (
    rb"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(.*?)"
    rb"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
_PEM_LINE = rb"(?m)^[+\- ]?([^\n]{2,})$"  # a lone diff mark before END is not key material

#: Token formats: (what, pattern, group); ``group`` is the part redacted (0: all). The
#: patterns are those of the detect-secrets 1.5 plugins (Yelp, Apache-2.0) where marked
#: ``ds``, and the issuers' documented prefixes otherwise; a lookbehind placed after the
#: literal prefix stands for ``\b`` without slowing the search.
TOKEN_PATTERNS: tuple[tuple[str, bytes, int], ...] = (
    ("AWS access key id (ds)", rb"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])", 0),
    ("GitHub token (ds)", rb"gh[pousr]_(?<![A-Za-z0-9]gh._)[A-Za-z0-9_]{36,255}", 0),
    ("GitHub fine-grained token", rb"github_pat_[A-Za-z0-9_]{22,255}", 0),
    ("GitLab token (ds)",
     rb"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_\-]{20,1024}", 0),
    ("GitLab runner token (ds)", rb"GR1348941[A-Za-z0-9_\-]{20,50}", 0),
    ("Slack token (ds)", rb"xox[aboprs]-[A-Za-z0-9-]{10,}", 0),
    ("Slack webhook (ds)", rb"https://hooks\.slack\.com/services/[A-Za-z0-9_/]+", 0),
    ("OpenAI or Anthropic key (ds, extended)",
     rb"sk-(?<![A-Za-z0-9_]sk-)[A-Za-z0-9_\-]{20,}", 0),
    ("Stripe key (ds)", rb"k_(?<=[rs]k_)(?:live|test)_[0-9A-Za-z]{16,}", 0),
    ("Stripe webhook secret", rb"whsec_[0-9A-Za-z]{24,}", 0),
    ("JSON web token (ds)", rb"eyJ[A-Za-z0-9_=-]{6,}\.[A-Za-z0-9_=-]{6,}\.?[A-Za-z0-9_.+/=-]*", 0),
    ("Hugging Face token", rb"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{30,}", 0),
    ("Google API key", rb"AIza[0-9A-Za-z_\-]{35}", 0),
    ("Google OAuth token", rb"ya29\.[0-9A-Za-z_\-]{20,}", 0),
    ("npm token", rb"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}", 0),
    ("npm auth token (ds)", rb":_authToken=([^\s\"']+)", 1),
    ("PyPI token (ds)", rb"pypi-AgE[A-Za-z0-9_\-]{50,}", 0),
    ("SendGrid key (ds)", rb"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", 0),
    ("Twilio key (ds)", rb"SK(?<![A-Za-z0-9]SK)[0-9a-fA-F]{32}(?![0-9a-fA-F])", 0),
    ("Mailchimp key (ds)", rb"-us(?<=[0-9a-f]{32}-us)[0-9]{1,2}(?![0-9])", 0),
    ("Square token (ds)", rb"sq0(?:csp-[0-9A-Za-z_\-]{43}|atp-[0-9A-Za-z_\-]{22})", 0),
    ("Square OAuth token (ds)", rb"EAAA[0-9A-Za-z_\-]{60}", 0),
    ("Telegram bot token (ds)", rb":(?<=[0-9]{8}:)([0-9A-Za-z_\-]{35})(?![0-9A-Za-z_\-])", 1),
    ("Azure storage key (ds)", rb"AccountKey=([A-Za-z0-9+/=]{40,})", 1),
    ("Artifactory token (ds)", rb"AKC(?<=[\s=:\"']AKC)[A-Za-z0-9]{10,}", 0),
    ("DigitalOcean token", rb"do[por]_v1_[a-f0-9]{64}", 0),
    ("Databricks token", rb"dapi[a-f0-9]{32}(?:-[0-9])?", 0),
    ("Shopify token", rb"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", 0),
    ("Replicate token", rb"r8_(?<![A-Za-z0-9_]r8_)[A-Za-z0-9]{37}", 0),
)  # fmt: skip
# Per pattern, substrings without one of which it cannot match: a pattern is compiled and
# run only where one is present, so a command line's few words compile almost none of them
# (all of them take about 10 ms to compile) and a diff skips most.
_HINTS: tuple[tuple[bytes, ...], ...] = (
    (b"A3T", b"ABIA", b"ACCA", b"AKIA", b"ASIA"), (b"gh",), (b"github_pat_",), (b"gl",),
    (b"GR1348941",), (b"xox",), (b"hooks.slack.com",), (b"sk-",), (b"k_live_", b"k_test_"),
    (b"whsec_",), (b"eyJ",), (b"hf_",), (b"AIza",), (b"ya29.",), (b"npm_",),
    (b":_authToken=",), (b"pypi-AgE",), (b"SG.",), (b"SK",), (b"-us",), (b"sq0",),
    (b"EAAA",), (b":",), (b"AccountKey=",), (b"AKC",), (b"_v1_",), (b"dapi",), (b"shp",),
    (b"r8_",),
)  # fmt: skip
# Bytes before the match that belong to the secret: a Mailchimp key's 32 hex digits come
# before the "-us" its pattern starts at, a Stripe key's "s" or "r" before its "k_".
_BACK = {"Mailchimp key (ds)": 32, "Stripe key (ds)": 1}


@functools.cache
def _rb(pattern: bytes) -> re.Pattern[bytes]:
    """A bytes pattern, compiled on first use: importing this module compiles nothing."""
    return re.compile(pattern)


@functools.cache
def _rs(pattern: str) -> re.Pattern[str]:
    """A str pattern, compiled on first use."""
    return re.compile(pattern)


@functools.cache
def _token(index: int) -> tuple[re.Pattern[bytes], int, int]:
    """Token pattern ``index``, compiled on first use: (pattern, group, bytes back)."""
    what, pattern, group = TOKEN_PATTERNS[index]
    return _rb(pattern), group, _BACK.get(what, 0)


def _option_name(arg: str) -> str | None:
    """The normalised name of an option word (``--API_Key`` → ``api-key``), else None."""
    if not arg.startswith("-") or arg in ("-", "--") or arg[1:2].isdigit():
        return None
    return arg.lstrip("-").lower().replace("_", "-")


def is_secret_key(name: str) -> bool:
    """Whether a name (``HF_TOKEN``, ``db.password``, ``api_key``) ends in a secret word.

    ``MAX_TOKENS``, ``tokenizer`` and ``sort_key`` do not.
    """
    normal = _rs(r"[_.\s]+").sub("-", name.lower()).strip("-")
    return bool(_rs(_SECRET_NAME).search(normal)) and normal not in _HARMLESS_KEY_OPTIONS


def is_secret_option(arg: str) -> bool:
    """Whether the option word ``arg`` (``--api-key``, ``--HF_TOKEN=x``) takes a secret value.

    The name (before any ``=``) must end in a secret word: ``--token`` and
    ``--hf-token`` do, ``--max-tokens`` and ``--tokenizer`` do not.
    """
    name = _option_name(arg.partition("=")[0])
    return bool(name) and is_secret_key(str(name))


def _name_start(low: bytes, start: int) -> int:
    """Where the name whose last word starts at ``start`` begins (back over name chars)."""
    while start > 0 and low[start - 1] in _NAME_CHARS:
        start -= 1
    return start


def _is_code(value: bytes, original: bytes) -> bool:
    """Whether a bare value reads as code (``args.token``, ``api_key``, ``Token``)."""
    if not _rb(_IDENTIFIERS).match(value):
        return False
    return b"." in value or b"_" in value or original[:1].isupper() or value in _LITERALS


def _spans(data: bytes) -> list[tuple[int, int]]:
    """Where the secrets are in ``data``: (start, end) byte offsets, unsorted."""
    low = data.lower()
    spans: list[tuple[int, int]] = []
    for pem in _rb(_PEM).finditer(data) if b"-----BEGIN " in data else ():
        offset = pem.start(1)
        lines = _rb(_PEM_LINE).finditer(pem[1])
        spans += [(offset + m.start(1), offset + m.end(1)) for m in lines]
    if b"://" in data:
        spans += [m.span(1) for m in _rb(_URL_PASSWORD).finditer(data)]
        spans += [m.span(1) for m in _rb(_URL_USER_TOKEN).finditer(low)]
    if b"=" in data:
        spans += [m.span(2) for m in _rb(_QUERY_PARAM).finditer(low)]
    if b"authorization" in low:
        spans += [m.span(1) for m in _rb(_AUTH_HEADER).finditer(low)]
    assigned = _rb(_ASSIGNED).finditer(low) if any(c in low for c in b"=: \t") else ()
    for m in assigned:
        first = _name_start(low, m.start(1))
        name = low[first : m.end(1)].decode("ascii", "replace")
        if m.group(6) is not None:  # after blanks: only the value of an option
            if name.startswith("-") and is_secret_option(name):
                spans.append(m.span(6))
            continue
        if name.strip("-_.") in _BARE_WORDS or not is_secret_key(name):
            continue
        group = next(g for g in (3, 4, 5) if m.group(g) is not None)
        if group != 3:  # a bare value: an upper-case (environment) name's is always a value
            env_style = group == 4 and data[first : m.end(1)].isupper()
            if not env_style and _is_code(m[group], data[m.start(group) : m.end(group)]):
                continue
        spans.append(m.span(group))
    for index, hints in enumerate(_HINTS):
        if any(hint in data for hint in hints):
            pattern, group, back = _token(index)
            spans += [(m.start(group) - back, m.end(group)) for m in pattern.finditer(data)]
    return spans


def redact_bytes(data: bytes) -> tuple[bytes, int]:
    """Bytes (a diff) with every secret replaced by ``***``, and how many were replaced.

    Undecodable bytes pass through; overlapping findings are merged into one ``***``.
    """
    if not data:
        return data, 0
    spans = sorted(s for s in _spans(data) if s[1] > s[0])
    if not spans:
        return data, 0
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    marker = REDACTED.encode()
    for start, end in merged:
        out += [data[last:start], marker]
        last = end
    out.append(data[last:])
    return b"".join(out), len(merged)


def redact_text_counted(text: str) -> tuple[str, int]:
    """:func:`redact_text` and how many secrets it replaced."""
    if not text:
        return text, 0
    data, count = redact_bytes(text.encode("utf-8", "surrogateescape"))
    return (data.decode("utf-8", "surrogateescape") if count else text), count


def redact_text(text: str) -> str:
    """``text`` with every secret it shows replaced by ``***`` (see the module's rules)."""
    return redact_text_counted(text)[0]


def redact_url(url: str | None) -> str | None:
    """A URL without the user-info it may embed (``https://tok@host``) and secrets redacted."""
    if not url:
        return url
    return redact_text(_rs(_URL_USERINFO).sub(r"\1", url))


def redact_argv(argv: Sequence[str] | Iterable[str]) -> list[str]:
    """A command line with secret values replaced by ``***``, the words kept in place.

    ``--api-key=SECRET`` → ``--api-key=***``; ``--password SECRET`` → ``--password ***``;
    ``HF_TOKEN=hf_x`` → ``HF_TOKEN=***``; any other word goes through :func:`redact_text`
    (URLs with credentials, token formats). The length of ``argv`` never changes.
    """
    out: list[str] = []
    take_value = False
    for raw in argv:
        arg = str(raw)
        if take_value:
            take_value = False
            if not arg.startswith("--"):
                out.append(REDACTED if arg else arg)
                continue
        if is_secret_option(arg):
            name, eq, value = arg.partition("=")
            if eq:
                out.append(f"{name}={REDACTED}" if value else arg)
            else:
                out.append(arg)
                take_value = True
            continue
        variable = _rs(_VARIABLE).match(arg)
        if variable and is_secret_key(variable.group(1)):
            out.append(f"{variable.group(1)}={REDACTED}")
            continue
        out.append(redact_text(arg))
    return out
