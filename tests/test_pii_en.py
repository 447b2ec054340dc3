"""English PII: what the model would receive when an English-speaking customer writes their name,
address and phone numbers — and the ordinary sentences that must reach it untouched."""

from __future__ import annotations

import pytest

from kefu.safety import MemoryPiiVault, PiiType, redact_pii, restore
from kefu.safety.pii_en_lexicon import census, is_word

BANK_CUSTOMER = (
    "Hi, I'm Sarah Johnson, I live at 1234 Oak Street, Apt 5, Springfield, IL 62704, "
    "call me on (555) 123-4567 or +44 20 7946 0958"
)


def test_the_bank_customer_reaches_the_model_without_name_address_or_phones() -> None:
    r = redact_pii(BANK_CUSTOMER)
    assert r.text == "Hi, I'm [姓名_1], I live at [地址_1], call me on [电话_1] or [电话_2]"
    assert r.mapping == {
        "[姓名_1]": "Sarah Johnson",
        "[地址_1]": "1234 Oak Street, Apt 5, Springfield, IL 62704",
        "[电话_1]": "(555) 123-4567",
        "[电话_2]": "+44 20 7946 0958",
    }
    assert restore(r.text, r.mapping) == BANK_CUSTOMER


def test_placeholders_stay_stable_through_the_vault() -> None:
    vault = MemoryPiiVault()
    first = redact_pii("My name is Sarah Johnson, phone 020 7946 0958", vault=vault)
    again = redact_pii("Sarah Johnson again: please call 020 7946 0958", vault=vault)
    assert first.text == "My name is [姓名_1], phone [电话_1]"
    assert again.text == "[姓名_1] again: please call [电话_1]"
    assert vault.known() == {"[姓名_1]": "Sarah Johnson", "[电话_1]": "020 7946 0958"}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("my name is vitoria", "vitoria"),  # lower case after a strong cue
        ("Name: Abby M. Laidlaw", "Abby M. Laidlaw"),
        ("Dear Mr. Grant, my card was declined", "Grant"),  # an everyday word, but after a title
        ("This is Krisztián Szöllösy from the Budapest branch", "Krisztián Szöllösy"),
        ("we need to add Ryan P Costa as guardian", "Ryan P Costa"),
        ("Thanks, Anna", "Anna"),
        ("Can Maria see my statements too?", "Maria"),  # a census first name; "Priya" is not one
        ("James Talbot's card was stolen", "James Talbot"),
        ("My name is Emma Taylor, please call me", "Emma Taylor"),  # a surname that is also a trade
        ("Noah Walker here, my card is blocked", "Noah Walker"),
        ("收件人：Will Smith，电话13800138000", "Will Smith"),  # a Chinese cue, a Latin-script name
        ("我叫Mark Chen", "Mark Chen"),
        # after a cue, a surname that is a place, a street word or an everyday word stays in the name
        ("My name is John Canada", "John Canada"),
        ("I'm Charlotte Park, order XP1016", "Charlotte Park"),
        ("Hi, I'm Rose Bunce", "Rose Bunce"),
        ("I'm Julio McDonald", "Julio McDonald"),
        ("Hello, this is Veronica van der Voet.", "Veronica van der Voet"),
    ],
)
def test_names(text: str, name: str) -> None:
    r = redact_pii(text)
    assert [r.mapping[e.placeholder] for e in r.entities if e.type is PiiType.PERSON] == [name]


@pytest.mark.parametrize(
    "text",
    [
        "May I change my delivery address?",
        "Will it ship to Canada?",
        "Does the Apple Watch come with a charger?",
        "Mark my order as urgent",
        "I'm trying to top up with Apple Pay",
        "I am URGENT, please help",
        "Bill me next month please",
        "Is Western Union supported in the United Kingdom?",
        "Why is my App showing a pending payment?",
        "my name is misspelled on the card",
        "Frank question: why the fee?",
        "The ATM at Metro bank on High St. Kensington kept my card",
        "I want 2 Big Macs and 3 Happy Meals",
        "Is the Nike Air Max available in size 10?",
        "Do you ship to Hong Kong or New Zealand?",
        "Can Alexa order for me?",
        "Is the Dyson V15 Detect cordless?",
        "Hi, My card is declined",
        "Hello, Just now I got charged twice",
        "I'm Back from holiday and the card fails",
        "this is Oak Street right?",
        "Hi Team, my card is lost",
    ],
)
def test_ordinary_sentences_are_untouched(text: str) -> None:
    assert redact_pii(text).text == text


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Please send it to Hauptstraße 5, 10115 Berlin", "Hauptstraße 5, 10115 Berlin"),
        ("ship to 12 oak street apt 4 please", "12 oak street apt 4"),
        ("I live at 6750 Koskikatu 25 Apt. 864\nHelsinki", "6750 Koskikatu 25 Apt. 864\nHelsinki"),
        ("It's at 62 Rue de la Gare, Lyon", "62 Rue de la Gare, Lyon"),
        (
            "meet at the corner of Pentelis Str. and Waechter Turnpike",
            "the corner of Pentelis Str. and Waechter Turnpike",
        ),
        ("new address: 10 Downing Street, London SW1A 2AA", "10 Downing Street, London SW1A 2AA"),
        ("Send it to Flat 3, 14 Park Road, Manchester M14 5RA", "Flat 3, 14 Park Road, Manchester M14 5RA"),
        ("deliver to 500 W 2nd St Apt 5B, Austin, TX 78701", "500 W 2nd St Apt 5B, Austin, TX 78701"),
        ("Address: 55 King St W, Toronto, ON M5K 1A2", "55 King St W, Toronto, ON M5K 1A2"),
        ("my address is 123 Main St. Thanks!", "123 Main St"),  # the sign-off is no town
        ("Dr. Holinka Apt. 117 5720 Skoanveien 226", "Apt. 117 5720 Skoanveien 226"),
    ],
)
def test_street_addresses(text: str, address: str) -> None:
    r = redact_pii(text)
    assert [r.mapping[e.placeholder] for e in r.entities if e.type is PiiType.ADDRESS] == [address]


@pytest.mark.parametrize(
    "text",
    [
        "I paid 25 Euro 50 cents yesterday",  # a number, a word, a number: no cue, no unit, no address
        "Version 2 Update 3 broke the app",
        "It took 5 days on the road",
        "I bought 3 Road Bikes and 2 Street Lamps",  # a number and a street word, no street name
    ],
)
def test_numbers_around_words_are_no_address(text: str) -> None:
    assert not [e for e in redact_pii(text).entities if e.type is PiiType.ADDRESS]


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("call me on +1 415-555-2671 tonight", "+1 415-555-2671"),
        ("mobile 07700 900123 after six", "07700 900123"),
        ("WhatsApp +49 30 901820", "+49 30 901820"),
        ("ring 02 9374 4000 (Sydney office)", "02 9374 4000"),
        ("reach me at 212.555.0199 please", "212.555.0199"),
    ],
)
def test_phone_numbers_in_international_formats(text: str, phone: str) -> None:
    r = redact_pii(text)
    assert [r.mapping[e.placeholder] for e in r.entities if e.type is PiiType.PHONE] == [phone]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("寄件人唐嘉子（+1 (415) 555-0118）", "寄件人[姓名_1]（[电话_1]）"),
        ("call (+44 20 7946 0958) today", "call ([电话_1]) today"),
    ],
)
def test_a_bracket_around_a_number_stays_outside_its_mask(text: str, expected: str) -> None:
    assert redact_pii(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 2125550199 has not arrived",  # a valid-looking number after an order word
        "order number 4155552671 is missing",
        "server 192.168.10.20 is down",
        "I was charged 1,250.00 on 12/05/2024",
    ],
)
def test_numbers_that_are_no_phone(text: str) -> None:
    assert not [e for e in redact_pii(text).entities if e.type is PiiType.PHONE]


def test_the_word_lists_tell_names_from_words() -> None:
    first, last = census()
    assert {"Sarah", "Amy", "Priya"} & first == {"Sarah", "Amy"}  # census 1990: Priya is not in it
    assert "Johnson" in last and "Smith" in last
    assert {"May", "Will", "Grant", "Bill", "Mark", "Rose"}.isdisjoint(first)
    assert all(is_word(w) for w in ("May", "Apple", "Watch", "Canada", "Kingdom", "Street"))
    assert not any(is_word(w) for w in ("Sarah", "Johnson", "Szöllösy"))
