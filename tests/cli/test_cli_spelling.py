"""``cli_spelling``: a setting's Python argument (``pue=1.2``) reads as its option, and only
where it is an argument (not a variable, a file's key or a longer name)."""

from __future__ import annotations

from wattwise.cli._format import cli_spelling


def test_a_settings_argument_reads_as_its_option() -> None:
    said = ("pue=0.5 is not valid: pue must be a finite number >= 1.0 (PUE = facility energy "
            "/ IT energy, The Green Grid); pass e.g. pue=1.2.")  # fmt: skip
    assert cli_spelling(said) == (
        "--pue 0.5 is not valid: pue must be a finite number >= 1.0 (PUE = facility energy "
        "/ IT energy, The Green Grid); pass e.g. --pue 1.2."
    )
    assert cli_spelling("pue=nan; or pue=inf, then") == "--pue nan; or --pue inf, then"


def test_what_is_no_argument_is_kept() -> None:
    for kept in ("set e.g. WATTWISE_PUE=1.2, or unset it", "write e.g. pue = 1.2",
                 "$WATTWISE_PUE=0.5", "max_pue=3", "the pue is 1.2", "pue="):  # fmt: skip
        assert cli_spelling(kept) == kept
