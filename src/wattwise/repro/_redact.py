"""Secrets out of everything a run records: argv, variables, git remotes, the diff.

Redaction happens in the capturing process, before anything is written, so the ledger,
the spool, reports and exports only ever see ``***`` where a secret was. Three rules:

* **Options**: the value of an option whose name ends in a secret word (``--api-key``,
  ``--token``, ``--hf-token``, ``--password``, ``--db-passwd``, ``--client-secret``,
  ``--auth``, ``--credentials``, any ``--*-key``), in both ``--opt=value`` and
  ``--opt value`` forms, any case, ``_`` or ``-``; ``NAME=value`` words whose name looks
  like a credential (``HF_TOKEN=...``); assignments of a quoted string to such a name
  in text (``api_key = "..."``); ``Authorization:`` headers.
* **URLs**: the password of ``scheme://user:PASS@host``, a bare token as user
  (``https://TOKEN@host``), and query parameters named like credentials (``token``,
  ``key``, ``sig``, ``signature``, ``private_token``, ``access_token``, ``password``,
  ``secret``, ``X-Amz-Signature``, ``X-Amz-Credential`` ...).
* **Token formats** anywhere in text: the patterns of the ``detect-secrets`` plugins
  (AWS, GitHub, GitLab, Slack, OpenAI, Stripe, JWT, private keys, npm, PyPI, SendGrid,
  Twilio, Mailchimp, Square, Telegram, Discord, Azure storage, Artifactory, IBM, basic
  auth), ported here because the package costs 0.25 s to import (it imports
  ``requests``) and reports values, not positions; plus formats it lacks (Hugging Face
  ``hf_``, Google ``AIza``, GitHub ``github_pat_``, npm ``npm_``, Anthropic and OpenAI
  project keys, DigitalOcean, Databricks, Shopify, Replicate, Slack webhooks).

The rules err towards redacting: a value lost from the record costs less than a secret
kept in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

#: What a secret is replaced with.
REDACTED = "***"

# Names (options, variables, keys) whose last word says they hold a secret.
_SECRET_WORDS = (
    "password|passwd|passphrase|pwd|pass|secret|secrets|token|apikey|api-key|key|auth"
    "|authorization|credential|credentials|cookie|bearer|signature|sig|dsn|private-key"
)
_SECRET_NAME = re.compile(rf"(?:^|-)(?:{_SECRET_WORDS})$")
# Option names ending in "-key" that name a field, not a secret (``--sort-key``).
_HARMLESS_KEY_OPTIONS = frozenset(
    {"sort-key", "metric-key", "monitor-key", "label-key", "target-key", "input-key",
     "text-key", "image-key", "group-key", "partition-key", "join-key", "dict-key",
     "hotkey", "cache-key", "primary-key", "foreign-key", "output-key", "column-key"}
)  # fmt: skip
_VARIABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)=(.+)$", re.DOTALL)

# ``--opt=value`` / ``--opt value`` inside free text (a shell line in the diff).
_TEXT_OPTION = re.compile(
    r"(?i)(?<![\w-])(--?[a-z0-9][a-z0-9_-]*?(?:password|passwd|pwd|secret|token|api[-_]?key"
    r"|access[-_]?key|secret[-_]?key|private[-_]?key|auth|credentials?))(=|[ \t]+)"
    r"(?!--?[a-z])([\"']?)([^\s\"']+)"
)
# ``NAME = "value"`` / ``NAME: 'value'`` / ``"name": "value"`` with a credential-like name.
_ASSIGNMENT = re.compile(
    r"(?i)([\w.-]*?(?:password|passwd|passphrase|pwd|secret|token|api[-_]?key|apikey"
    r"|access[-_]?key|private[-_]?key|client[-_]?secret|auth|credentials?)[\"']?"
    r"\s*(?::=|=|:)\s*)([\"'])([^\"'\s{}$<>]{4,})\2"
)
# Unquoted ``NAME=value`` (env files, shell, overrides); the name is checked by a function.
_ENV_ASSIGNMENT = re.compile(r"(?<![\w.-])([A-Za-z_][A-Za-z0-9_.]*)=(?![\"'])([^\s\"'&;]{4,})")
_AUTH_HEADER = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)?\s*)"
    r"([A-Za-z0-9._~+/=-]{8,})"
)
# URL user-info: ``scheme://user:password@`` and ``scheme://token@``.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:\"']*:)([^\s/@\"']+)(@)")
_URL_USER_TOKEN = re.compile(r"(?i)\b(https?://)([^\s/@:\"']{16,})(@)")
_URL_USERINFO = re.compile(r"^([A-Za-z][\w+.-]*://)[^/@\s]*@")
# Query (and fragment) parameters that carry credentials.
_QUERY_PARAM = re.compile(
    r"(?i)([?&;#](?:[\w.-]*?(?:token|key|secret|password|passwd|pwd|signature|credential"
    r"|auth)|sig|x-amz-security-token|x-goog-signature)=)"
    r"([^&#\s\"'<>]+)"
)
_PEM = re.compile(
    r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(.*?)"
    r"(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_PEM_LINE = re.compile(r"(?m)^([+\- ]?)(.+)$")

#: Token formats: (what, pattern). Sources: the detect-secrets 1.5 plugins (Yelp,
#: Apache-2.0) where noted ``ds``; the issuers' documented prefixes otherwise.
TOKEN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("AWS access key id (ds)", r"\b(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("GitHub token (ds)", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36,255}"),
    ("GitHub fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}"),
    ("GitLab token (ds)",
     r"\b(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-[A-Za-z0-9_\-]{20,1024}"),
    ("GitLab runner token (ds)", r"\bGR1348941[A-Za-z0-9_\-]{20,50}"),
    ("Slack token (ds)", r"\bxox[aboprs]-(?:[A-Za-z0-9]+-?){2,}"),
    ("Slack webhook (ds)", r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]+"),
    ("OpenAI or Anthropic key (ds, extended)", r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_\-]{20,}"),
    ("Stripe key (ds)", r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}"),
    ("Stripe webhook secret", r"\bwhsec_[0-9A-Za-z]{24,}"),
    ("JSON web token (ds)", r"\beyJ[A-Za-z0-9_=-]{6,}\.[A-Za-z0-9_=-]{6,}\.?[A-Za-z0-9_.+/=-]*"),
    ("Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("Google OAuth token", r"\bya29\.[0-9A-Za-z_\-]{20,}"),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}"),
    ("npm auth token (ds)", r"(?<=:_authToken=)[^\s\"']+"),
    ("PyPI token (ds)", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),
    ("SendGrid key (ds)", r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    ("Twilio key (ds)", r"\bSK[0-9a-fA-F]{32}\b"),
    ("Mailchimp key (ds)", r"\b[0-9a-z]{32}-us[0-9]{1,2}\b"),
    ("Square token (ds)",
     r"\b(?:sq0csp-[0-9A-Za-z_\-]{43}|sq0atp-[0-9A-Za-z_\-]{22}|EAAA[0-9A-Za-z_\-]{60})"),
    ("Telegram bot token (ds)", r"\b[0-9]{8,10}:[0-9A-Za-z_\-]{35}\b"),
    ("Discord bot token (ds)",
     r"\b[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,}"),
    ("Azure storage key (ds)", r"(?<=AccountKey=)[A-Za-z0-9+/=]{40,}"),
    ("Artifactory token (ds)", r"\bAKC[A-Za-z0-9]{10,}"),
    ("DigitalOcean token", r"\bdo[por]_v1_[a-f0-9]{64}"),
    ("Databricks token", r"\bdapi[a-f0-9]{32}(?:-[0-9])?"),
    ("Shopify token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("Replicate token", r"\br8_[A-Za-z0-9]{37}"),
    ("Weights & Biases key", r"(?<=(?i:wandb_api_key)=)[a-f0-9]{40}"),
)  # fmt: skip
_TOKENS = re.compile("|".join(f"(?:{pattern})" for _, pattern in TOKEN_PATTERNS))


def _option_name(arg: str) -> str | None:
    """The normalised name of an option word (``--API_Key`` → ``api-key``), else None."""
    if not arg.startswith("-") or arg in ("-", "--") or arg[1:2].isdigit():
        return None
    return arg.lstrip("-").lower().replace("_", "-")


def is_secret_option(arg: str) -> bool:
    """Whether the option word ``arg`` (``--api-key``, ``--HF_TOKEN=x``) takes a secret value.

    The name (before any ``=``) must end in a secret word: ``--token`` and
    ``--hf-token`` do, ``--max-tokens`` and ``--tokenizer`` do not.
    """
    name = _option_name(arg.partition("=")[0])
    return bool(name) and is_secret_key(str(name))


def is_secret_key(name: str) -> bool:
    """Whether a name (``HF_TOKEN``, ``db.password``, ``api_key``) ends in a secret word.

    ``MAX_TOKENS``, ``tokenizer`` and ``sort_key`` do not.
    """
    normal = re.sub(r"[_.\s]+", "-", name.lower()).strip("-")
    return bool(_SECRET_NAME.search(normal)) and normal not in _HARMLESS_KEY_OPTIONS


def _redact_pem(match: re.Match[str]) -> str:
    body = _PEM_LINE.sub(
        lambda m: f"{m.group(1)}{REDACTED}" if m.group(2).strip() else m[0], match.group(2)
    )
    return f"{match.group(1)}{body}{match.group(3)}"


def redact_text_counted(text: str) -> tuple[str, int]:
    """:func:`redact_text` and how many secrets it replaced."""
    if not text:
        return text, 0
    count = 0

    def assignment(match: re.Match[str]) -> str:
        nonlocal count
        if not is_secret_key(match.group(1)) or match.group(2) == REDACTED:
            return match[0]
        count += 1
        return f"{match.group(1)}={REDACTED}"

    rules: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
        (_PEM, _redact_pem),
        (_URL_PASSWORD, rf"\1{REDACTED}\3"),
        (_URL_USER_TOKEN, rf"\1{REDACTED}\3"),
        (_QUERY_PARAM, rf"\1{REDACTED}"),
        (_AUTH_HEADER, rf"\1{REDACTED}"),
        (_TEXT_OPTION, rf"\1\2\3{REDACTED}"),
        (_ASSIGNMENT, rf"\1\2{REDACTED}\2"),
    )
    for pattern, repl in rules:
        text, n = pattern.subn(repl, text)
        count += n
    text = _ENV_ASSIGNMENT.sub(assignment, text)
    text, n = _TOKENS.subn(REDACTED, text)
    count += n
    # ``***`` runs left by overlapping rules collapse to one marker.
    return re.sub(r"(?:\*\*\*){2,}", REDACTED, text), count


def redact_text(text: str) -> str:
    """``text`` with every secret it shows replaced by ``***`` (see the module's rules)."""
    return redact_text_counted(text)[0]


def redact_bytes(data: bytes) -> tuple[bytes, int]:
    """Bytes (a diff) redacted as text; undecodable bytes pass through. Also the count."""
    text = data.decode("utf-8", "surrogateescape")
    redacted, count = redact_text_counted(text)
    if not count:
        return data, 0
    return redacted.encode("utf-8", "surrogateescape"), count


def redact_url(url: str | None) -> str | None:
    """A URL without the user-info it may embed (``https://tok@host``) and secrets redacted."""
    if not url:
        return url
    return redact_text(_URL_USERINFO.sub(r"\1", url))


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
        variable = _VARIABLE.match(arg)
        if variable and is_secret_key(variable.group(1)):
            out.append(f"{variable.group(1)}={REDACTED}")
            continue
        out.append(redact_text(arg))
    return out


def has_redactions(values: Iterable[str]) -> list[str]:
    """The words of ``values`` that carry a ``***`` put there by redaction."""
    return [v for v in values if REDACTED in v]
