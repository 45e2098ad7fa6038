"""A library message in the spelling of options typed as words: the CLI's, the magics'.

The library's messages speak to the Python API: ``pass meters=['cpu-model']``, ``pue=0.5
is not valid ...; pass e.g. pue=1.2``. Where options are typed as words (``wattwise run``,
``%%wattwise``) the same advice reads ``pass --meters cpu-model``, ``--pue 0.5 is not
valid ...; pass e.g. --pue 1.2``. The command line and the notebook magics both use
:func:`cli_spelling` (the CLI's formatting module re-exports it).
"""

from __future__ import annotations

import re

__all__ = ["cli_spelling"]

#: ``meters=['cpu-model']`` or ``meters=["a", "b"]``: the Python API's meter choice in a
#: message (the library's messages speak to the Python API; the CLI names its option).
_METER_ID = r"""(?:'[\w.:-]+'|"[\w.:-]+")"""
_METERS_ARGUMENT = re.compile(rf"\bmeters=\[({_METER_ID}(?:, ?{_METER_ID})*)\]")

#: ``pue=1.2``: a setting given as a Python argument, as the settings' messages write it
#: (``_config``: ``pue=0.5 is not valid``, ``pass e.g. pue=1.2``), and the option of the
#: same meaning. The value ends at white space, or at a final ``.``, ``;``, ``:`` or ``,``
#: before it (the end of a sentence); a name run into another (``WATTWISE_PUE=``,
#: ``max_pue=``) is not an argument.
_SETTING_OPTIONS = {"pue": "--pue"}
_SETTING_ARGUMENT = re.compile(
    rf"(?<![\w$.-])({'|'.join(_SETTING_OPTIONS)})=(\S+?)(?=[.;:,]?(?:\s|$))"
)


def cli_spelling(message: str) -> str:
    """``message`` with the Python API's spelling of an option replaced by the CLI's.

    A library message such as a meter's way out says ``pass meters=['cpu-model']``; on the
    command line the same advice is ``pass --meters cpu-model``. A setting's
    ``pue=1.2`` reads ``--pue 1.2``.
    """

    def meters(match: re.Match[str]) -> str:
        ids = [part.strip().strip("'\"") for part in match[1].split(",")]
        return f"--meters {','.join(ids)}"

    def setting(match: re.Match[str]) -> str:
        return f"{_SETTING_OPTIONS[match[1]]} {match[2]}"

    return _SETTING_ARGUMENT.sub(setting, _METERS_ARGUMENT.sub(meters, message))
