"""The word lists behind English name detection, loaded once from packages that ship them.

* ``names`` 0.3.0 (MIT): the US Census 1990 first-name (5,163) and surname (88,799) lists, with
  their frequency rank.
* ``english-words`` 2.0.2 (MIT): Webster's Second (web2), 236k entries, case kept: a word listed in
  lower case ("may", "grant", "apple") is an ordinary word; "Sarah" is listed only capitalised.
* ``phonenumbers`` (Apache-2.0): the English names of every country, from its geocoding metadata.

A census name that web2 also lists in lower case is ambiguous. The commonest names (top ranks)
are kept as names ("Amy", "Alan", "Smith") unless they are an everyday English word a customer
capitalises at the start of a sentence, in ``COMMON_WORDS``; rarer ones count as words.
"""

from __future__ import annotations

from functools import cache
from importlib import resources, util
from pathlib import Path

from english_words import get_english_words_set

_TOP_FIRST_MALE, _TOP_FIRST_FEMALE, _TOP_LAST = 600, 1200, 5000

# Everyday words that are also common census names: a name only with a cue ("my name is Will").
COMMON_WORDS = frozenset(
    """
    Will May Mark Bill Grant Rose Long Young Frank Art Page Ball Bank Bass Battle Beach Bell Best Black
    Blue Brown Green Gray Grey White Gold Golden Silver Block Bond Branch Bright Call Camp Case Cash
    Chance Charity Chase Church Clay Cook Cross Day Deal Early East West North South Fair Faith Field
    Fish Ford Fortune Free Friend Frost Glass Good Grace Hall Hand Hardy Head High Hill Hope House
    Hunt Joy Justice Key King Kitchen Lake Land Lane Law Light Link Little Lord Love Main Major
    Merchant Moon Noble Pack Park Parent Person Post Power Price Prince Queen Quick Rich Ring Rock Root
    Royal Rush Sample Self Sharp Short Small Smart Snow Spring Stark Still Stone Story Strange Street
    Strong Sweet Swift Temple Urban Wall Ward Way Wise Wood Worth Sun Star Ash Angel Amber Crystal
    Diamond Destiny Honey Iris Ivy Lily Penny Pearl Ruby Sandy Holly Heather Dawn Candy Misty Melody
    Guy Jack Chuck Pat Rob Don Jay Do Ma Ho Lay Van Ham Tan Summer Winter Autumn August June March
    Apple Card Pay Cannon Hook Hurt Minor Person Still Speaker Worker Fox Hawk Crow Swan Wolf Bird
    Bull Bear Buck Lamb Salmon Trout Dove Finch Wren Hare Peacock Cotton Silk Pepper Ginger Olive Lemon
    Cherry Berry Bean Rice Bacon Bread Sugar Salt Tour Travel Express Target Visa Amazon Google Paypal
    Western Union Euro Pound Dollar Sterling Transfer Top Help App Shell Metro Box Close Place Anytime
    Greek Nord Loop Mall Gateway Crossroad New Brand Max Pro Plus Mini Ultra Prime Premier Classic Back
    """.split()  # noqa: SIM905
)
# Brands and products written like names ("Can Alexa order for me?", "Dyson V15", "Tesla Model 3").
BRANDS = frozenset(
    """
    Alexa Siri Cortana Dyson Dell Tesla Wells Fargo Barclays Lloyds Santander Mercedes Porsche Ferrari
    Nike Adidas Puma Reebok Levi Levis Gucci Prada Chanel Dior Hermes Cartier Rolex Casio Sony Philips
    Bosch Miele Siemens Samsung Nokia Motorola Lenovo Asus Acer Huawei Xiaomi Oppo Vivo Canon Nikon
    Kodak Disney Pixar Marvel Netflix Spotify Hulu Uber Lyft Airbnb Expedia Zara Primark Tesco Asda
    Walmart Costco Kroger Aldi Lidl Sainsbury Sainsburys Morrisons Argos Ikea Revolut Monzo Klarna
    Venmo Zelle Stripe Shopify Ebay Etsy Alibaba Taobao Jd Lego Mattel Hasbro Kellogg Heinz Nestle
    """.split()  # noqa: SIM905
)
# Words that end a name even right after a first name or a cue ("Emma Taylor" is a name, "Sarah
# Thanks" is not): greetings, titles, days and months, brands; places and countries too.
NEVER_IN_NAME = frozenset(
    """
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday Christmas Easter January February March
    April May June July August September October November December Visa Amazon Google Paypal Apple
    Please Thanks Thank Hello Hi Hey Dear Sir Madam Mister Miss Mrs Ms Mr Dr App Card Pay Help The And
    """.split()  # noqa: SIM905
)
# Places a customer names without naming a person (countries come from phonenumbers' metadata).
PLACES = frozenset(
    """
    Europe Asia Africa America Americas Australia Antarctica Oceania Arctic Atlantic Pacific
    England Scotland Wales Britain Ireland Holland Korea Congo UK USA US UAE EU
    Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii
    Idaho Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan
    Minnesota Mississippi Missouri Montana Nebraska Nevada Hampshire Jersey Mexico York Carolina
    Dakota Ohio Oklahoma Oregon Pennsylvania Rhode Tennessee Texas Utah Vermont Virginia Washington
    Wisconsin Wyoming Ontario Quebec Alberta Columbia Manitoba Queensland
    London Paris Berlin Madrid Rome Milan Lisbon Dublin Amsterdam Brussels Vienna Prague Warsaw
    Budapest Athens Istanbul Moscow Stockholm Oslo Copenhagen Helsinki Zurich Geneva Munich Frankfurt
    Hamburg Barcelona Manchester Liverpool Birmingham Edinburgh Glasgow Bristol Leeds Sydney
    Melbourne Toronto Vancouver Montreal Boston Chicago Houston Dallas Austin Denver Phoenix Seattle
    Portland Atlanta Miami Orlando Vegas Angeles Francisco Diego Philadelphia Detroit Tokyo Osaka
    Seoul Beijing Shanghai Shenzhen Guangzhou Hong Kong Taipei Singapore Bangkok Delhi Mumbai Dubai
    Cairo Lagos Nairobi Johannesburg Rio Lima Bogota Santiago Buenos Aires Springfield Kensington
    American British English French German Spanish Italian Chinese Japanese Korean Indian Russian
    Dutch Polish Swedish Canadian Australian Mexican Irish Scottish Welsh European Asian African
    """.split()  # noqa: SIM905
)


@cache
def _ranks(name: str) -> dict[str, int]:
    """One census list: each name (title case) and its frequency rank."""
    ranks = {}
    for line in (resources.files("names") / name).read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) == 4:
            ranks[parts[0].title()] = int(parts[3])
    return ranks


def _census(name: str, top: int) -> tuple[frozenset[str], frozenset[str]]:
    """All names in one census list, and those ranked ``top`` or better."""
    ranks = _ranks(name)
    return frozenset(ranks), frozenset(n for n, rank in ranks.items() if rank <= top)


@cache
def lowercase_words() -> frozenset[str]:
    """Words web2 lists in lower case: ordinary words, not proper names."""
    return frozenset(w for w in get_english_words_set(["web2"], lower=False) if w.islower())


def _locale_data() -> dict[str, dict[str, str]]:
    """phonenumbers' region -> language -> country name table, loaded from its one module: importing it
    the usual way (``phonenumbers.geodata.locale``) first loads every geocoding table (~0.4 s)."""
    found = util.find_spec("phonenumbers")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("phonenumbers is not installed: install kefu's dependencies (pip install -e .).")
    path = Path(next(iter(found.submodule_search_locations))) / "geodata" / "locale.py"
    spec = util.spec_from_file_location("phonenumbers.geodata.locale", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(
            f"Cannot load {path}: reinstall phonenumbers (pip install -e . --force-reinstall)."
        )
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its compiled copy in __pycache__, when Python wrote one
    return dict(module.LOCALE_DATA)


@cache
def countries() -> frozenset[str]:
    """Country names of one word ("Uruguay", "Jordan") and the words of longer ones that are no
    census name ("United", "Kingdom", "Rica"; not "Costa", "Martin", "Vincent")."""
    raw = (
        _ranks("dist.male.first").keys() | _ranks("dist.female.first").keys() | _ranks("dist.all.last").keys()
    )
    words: set[str] = set()
    for region in _locale_data().values():
        parts = str(region.get("aa", "")).replace(",", "").split()
        words.update(w for w in parts if w[:1].isupper() and (len(parts) == 1 or name_key(w) not in raw))
    return frozenset(words)


@cache
def census() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, surnames) that are names, not ordinary words, in title case."""
    male, top_male = _census("dist.male.first", _TOP_FIRST_MALE)
    female, top_female = _census("dist.female.first", _TOP_FIRST_FEMALE)
    last, top_last = _census("dist.all.last", _TOP_LAST)
    words, not_names = lowercase_words(), _not_names()

    def names(every: frozenset[str], top: frozenset[str]) -> frozenset[str]:
        return frozenset(
            n for n in every if n not in not_names and (n in top or not listed(n.lower(), words))
        )

    return names(male | female, top_male | top_female), names(last, top_last)


@cache
def _not_names() -> frozenset[str]:
    return COMMON_WORDS | NEVER_IN_NAME | BRANDS | PLACES | countries()


def is_common(token: str) -> bool:
    """A greeting, a title, a day, a brand, a place or a country word: it ends a name even after a
    first name or a cue."""
    return token in NEVER_IN_NAME or token in BRANDS or token in PLACES or token in countries()


def is_word(token: str) -> bool:
    """An ordinary English word, a place, or a word of a country's name: not a name by itself."""
    first, last = census()
    if token in _not_names():
        return True
    key = name_key(token)
    return listed(token.lower(), lowercase_words()) and key not in first and key not in last


def name_key(word: str) -> str:
    """How the census writes a name: "McDonald" and "O'Neil" are "Mcdonald" and "Oneil"."""
    return word.replace("'", "").replace("’", "").title()


def ends_name(token: str) -> bool:
    """A greeting, a title, a day or a brand: it ends a name even right after a cue."""
    return token in NEVER_IN_NAME or token in BRANDS


def is_country(token: str) -> bool:
    return token in countries()


def is_census_name(word: str) -> bool:
    """Any census name, everyday words included ("Rose", "Will", "Bunce")."""
    key = name_key(word)
    return any(key in _ranks(name) for name in ("dist.male.first", "dist.female.first", "dist.all.last"))


def is_first_name(word: str) -> bool:
    return name_key(word) in census()[0]


def is_surname(word: str) -> bool:
    return name_key(word) in census()[1]


_INFLECTION = ("s", "es", "ed", "ing", "er", "ers", "ly")


def listed(word: str, words: frozenset[str]) -> bool:
    """``word`` or its stem is a web2 lower-case word ("meals", "relaxing": web2 lists lemmas only)."""
    if word in words:
        return True
    for end in _INFLECTION:
        if word.endswith(end):
            stem = word[: -len(end)]
            if stem in words or stem + "e" in words:
                return True
    return False
