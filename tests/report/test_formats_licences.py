"""The shipped data's licence texts: each one shipped, named by PROVENANCE.md, as copied."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

DATA = resources.files("wattwise.data")


def _provenance() -> str:
    return (DATA / "PROVENANCE.md").read_text(encoding="utf-8")


def test_every_licence_text_is_named_by_the_provenance_and_every_name_is_shipped() -> None:
    shipped = {p.name for p in (DATA / "LICENSES").iterdir() if p.name.endswith(".txt")}
    named = set(re.findall(r"LICENSES/([\w.-]+\.txt)", _provenance()))
    listed = set(re.findall(r"`([\w.-]+\.txt)`", _provenance().split("## LICENSES/", 1)[1]
                            .split("\n---", 1)[0]))  # fmt: skip
    assert named <= shipped, named - shipped
    assert shipped <= named | listed, shipped - (named | listed)


def test_the_cc_by_sa_text_covers_ember_and_unfccc_and_is_the_copy_recorded() -> None:
    text = (DATA / "LICENSES" / "CC-BY-SA-4.0.txt").read_text(encoding="utf-8")
    assert text.startswith("Attribution-ShareAlike 4.0 International\n")
    assert "Section 3 -- License Conditions." in text and "b. ShareAlike." in text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    provenance = _provenance()
    assert digest in provenance and f"{len(text):,} characters" in provenance
    row = next(line for line in provenance.splitlines() if line.startswith("| CC BY-SA 4.0"))
    assert "`LICENSES/CC-BY-SA-4.0.txt`" in row
    assert "grid/ember_average_intensities.json" in row
    assert "grid/unfccc_ifi_marginal_intensities_2021.json" in row
