"""Street addresses written the Western way: a house number and a street, then what follows it.

    12 Crown Street, Suite 321, London W1 2AB · 6750 Koskikatu 25 Apt. 864 · PSC 0413, Box 8144 APO AA 42323

A street is a house number next to a capitalised name that ends in a street word (Street, Road, Rue,
Strasse, -vej, -katu, -gatan …), in either order; what follows on the same or the next lines (Apt./
Suite/Unit, a town, a region code, a country, a postcode) joins the span. Military (PSC/Unit … Box)
and P.O. boxes count too. Bare town or country names are left alone: they are not a person's address.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_WORD = r"[^\W\d_][^\W\d_'.\-]*\.?"
# A capitalised word of a street or place name (never the unit that follows: Apt., Suite).
_NAME = r"(?!(?:Apt|Apartment|Suite|Ste|Unit|Flat|Box)\b)[A-ZÀ-ÖØ-ÞΑ-ΩА-Я][^\W\d_'.\-]*\.?"
_STREET_WORD = (
    r"(?!(?:Apt|Apartment|Suite|Ste|Unit|Flat|Box)\b)(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Square|Sq|"
    r"Terrace|Parkway|Pkwy|Highway|Hwy|Crescent|Close|Gardens|Gateway|Row|Alley|Circle|Cir|Trail|"
    r"Streets|Squares|Roads|Avenida|Rua|Rue|Via|Calle|Strasse|Straße|Weg|Platz|Gasse|Allee|"
    r"[^\W\d_]+(?:strasse|straße|weg|vej|gade|gatan|vägen|katu|tie|laan|straat|ulica|utca|u\.))\.?"
)
_NUMBER = r"[0-9]{1,6}[A-Za-z]?"
_STREET = re.compile(
    rf"\b(?:{_NUMBER}(?:[ ]{_NUMBER})?[ ](?:{_NAME}[ ]){{0,3}}{_STREET_WORD}(?:[ ]{_NUMBER})?"
    rf"|(?:{_NAME}[ ]){{0,2}}{_STREET_WORD}[ ]{_NUMBER}"
    r"|(?:PSC|Unit|CMR)[ ][0-9]{3,4},?[ ]Box[ ][0-9]{3,4}"
    r"|P\.?O\.?[ ]Box[ ][0-9]{1,6})\b"
)
_TAIL = re.compile(
    r"(?:,?[ ]*\n?[ ]*,?[ ]*(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Box)\.?[ ]?#?[0-9]{1,5}"
    rf"|(?:[A-Z]{{2,3}}[ ])?[0-9]{{4,6}}(?:-[0-9]{{4}})?|{_WORD}(?:[ ]\(?{_WORD}\)?){{0,2}}))"
)
_MAX_TAIL = 5


def find_street_addresses(text: str) -> Iterator[tuple[int, int]]:
    for match in _STREET.finditer(text):
        end = match.end()
        for _ in range(_MAX_TAIL):
            tail = _TAIL.match(text, end)
            if not tail or not _tail_ok(tail.group(0)):
                break
            end = tail.end()
        yield match.start(), end


def _tail_ok(tail: str) -> bool:
    """A tail part is a unit, a postcode or a capitalised place (not the next sentence's words)."""
    words = tail.strip(" ,\n").split()
    return bool(words) and all(w[0].isupper() or w[0].isdigit() or w[0] == "(" for w in words)
