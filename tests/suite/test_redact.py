from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence

import pytest

from suite.errors import ConfigError
from suite.redact import (
    BUILTIN_PATTERNS,
    RedactionPattern,
    Redactor,
    compile_custom_patterns,
    iban_ok,
    luhn_ok,
)

WHERE = "gateway.toml: redaction.patterns"


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def claim_body(note: str, **extra: object) -> str:
    """A claims-API JSON body with `note` in the adjuster's notes."""
    body: dict[str, object] = {
        "claim_id": "CLM-2024-000123",
        "policy": {"number": "POL-123456", "product": "home", "premium": 1234.56},
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "created_at": "2024-01-15T10:30:00.123Z",
        "loss_date": "2024-01-15",
        "amount": {"value": 18250.75, "currency": "EUR"},
        "notes": [{"at": "2024-01-16T08:00:00+01:00", "by": "adjuster-17", "text": note}],
    }
    body.update(extra)
    return json.dumps(body, indent=2, ensure_ascii=False)


def with_check_digit(prefix: str) -> str:
    """`prefix` plus the digit that makes it pass the Luhn check."""
    return next(prefix + d for d in "0123456789" if luhn_ok(prefix + d))


# --- check functions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "5555 5555 5555 4444", "378282246310005", "6011-1111-1111-1117"],
)
def test_luhn_accepts_valid_numbers(number: str) -> None:
    assert luhn_ok(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "", "12a4", "   "])
def test_luhn_rejects_invalid_numbers(number: str) -> None:
    assert not luhn_ok(number)


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "fr14 2004 1010 0505 0001 3m02 606",
        "NO9386011117947",
    ],
)
def test_iban_ok_accepts_valid_ibans(iban: str) -> None:
    assert iban_ok(iban)


@pytest.mark.parametrize(
    "text",
    [
        "DE88370400440532013000",  # check digits off by one
        "GB82WEST12345698765433",  # account number changed
        "DE89",
        "1289370400440532013000",
        "DE89-3704-0044-0532-0130-00",
        "",
    ],
)
def test_iban_ok_rejects_bad_check_digits_and_shapes(text: str) -> None:
    assert not iban_ok(text)


# --- built-in patterns: true positives ----------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "jane.doe@example.com",
        "J.Doe+claims@mail.insurer.co.uk",
        "o'brien_p@broker-net.ie",
        "claims.team-7@sub.domain.example.org",
    ],
)
def test_email_is_redacted_in_json(redactor: Redactor, email: str) -> None:
    body = claim_body(f"Claimant asked for updates at {email}.", contact={"email": email})
    out, counts = redactor.redact(body)
    assert email not in out
    assert counts == {"email": 2}
    assert out.count("[REDACTED:email]") == 2
    assert json.loads(out)["contact"]["email"] == "[REDACTED:email]"


@pytest.mark.parametrize(
    "phone",
    [
        "+1 555 123 4567",
        "+1-555-123-4567",
        "+1 (555) 123-4567",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+4930123456789",
        "+91 98765 43210",
        "(555) 123-4567",
        "(555)123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "1-800-555-0199",
        "020 7946 0958",
        "(020) 7946 0958",
        "07700 900123",
        "01 23 45 67 89",
        "01.23.45.67.89",
        "030 12345678",
        "06-12345678",
        "(02) 9876 5432",
        "(11) 98765-4321",
    ],
)
def test_phone_is_redacted_in_json(redactor: Redactor, phone: str) -> None:
    body = claim_body(f"Called the insured on {phone}, no answer; retry tomorrow.", phone=phone)
    out, counts = redactor.redact(body)
    assert phone not in out
    assert counts == {"phone": 2}
    assert json.loads(out)["phone"] == "[REDACTED:phone]"
    note = json.loads(out)["notes"][0]["text"]
    assert note == "Called the insured on [REDACTED:phone], no answer; retry tomorrow."


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555 5555 5555 4444",
        "2223 0031 2200 3222",  # Mastercard 2-series
        "378282246310005",  # Amex, ungrouped
        "3782 822463 10005",  # Amex, 4-6-5
        "3056 930902 5904",  # Diners, 4-6-4
        "6011 0009 9013 9424",
        "4222222222222",  # 13 digits
        with_check_digit("622126000000000000"),  # 19 digits
    ],
)
def test_card_is_redacted_in_json(redactor: Redactor, card: str) -> None:
    assert luhn_ok(card.replace(" ", ""))
    body = claim_body(f"Refund to card {card} approved.", payment={"card_number": card})
    out, counts = redactor.redact(body)
    assert card not in out
    assert counts == {"card": 2}
    assert json.loads(out)["payment"]["card_number"] == "[REDACTED:card]"


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "NO93 8601 1117 947",
        "CH9300762011623852957",
    ],
)
def test_iban_is_redacted_in_json(redactor: Redactor, iban: str) -> None:
    body = claim_body(f"Pay out to IBAN {iban} by Friday.", payee={"iban": iban})
    out, counts = redactor.redact(body)
    assert iban not in out
    assert counts == {"iban": 2}
    assert json.loads(out)["payee"]["iban"] == "[REDACTED:iban]"


def test_iban_followed_by_a_capitalised_word_keeps_the_word(redactor: Redactor) -> None:
    out, counts = redactor.redact("IBAN BE68 5390 0754 7034 DONE, thanks")
    assert out == "IBAN [REDACTED:iban] DONE, thanks"
    assert counts == {"iban": 1}


@pytest.mark.parametrize("ssn", ["123-45-6789", "078-05-1120", "219-09-9999", "899-99-9998"])
def test_us_ssn_is_redacted_in_json(redactor: Redactor, ssn: str) -> None:
    body = claim_body(f"Insured SSN {ssn} verified by phone.", insured={"ssn": ssn})
    out, counts = redactor.redact(body)
    assert ssn not in out
    assert counts == {"us_ssn": 2}
    assert json.loads(out)["insured"]["ssn"] == "[REDACTED:us_ssn]"


# --- true negatives -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        # Luhn-failing card-like numbers, epoch milliseconds, long ids
        "4111 1111 1111 1112",
        "4111-1111-1111-1112",
        "1234567812345678",
        "1705312200000",
        "1705312200000123",
        # invalid IBAN check digits
        "DE88370400440532013000",
        "GB82 WEST 1234 5698 7654 31",
        "GB83WEST12345698765432",
        # invalid SSNs
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        # dates, times, amounts, timestamps
        "2024-01-15",
        "15.01.2024",
        "01-15-2024",
        "01/15/2024",
        "10:30:00",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00.123456+01:00",
        "1234.56",
        "1234567.89",
        "12,345,678.90",
        "-12345678.90",
        "+123456789.90",
        # UUIDs, order ids and other ids that are part of words
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-5678-1234-567812345678",
        "ORD-2024-000123",
        "ORD-555-123-4567",
        "order_100234567",
        "INV2024000123456",
        "id12345678901",
        "v10.0.19045.2965",
        "192.168.100.200",
        "12 345 678",
        "not-an-email@",
        "@handle",
    ],
)
def test_look_alikes_are_left_alone(redactor: Redactor, value: str) -> None:
    body = claim_body(f"Reference {value} noted.", reference=value)
    out, counts = redactor.redact(body)
    assert (out, counts) == (body, {})


def test_an_invalid_iban_is_not_counted_as_one(redactor: Redactor) -> None:
    # Its trailing digit groups look like a national phone number (0532 0130 00), which
    # is redacted as one: over-redaction is the safe side.
    out, counts = redactor.redact("IBAN DE88 3704 0044 0532 0130 00")
    assert (out, counts) == ("IBAN DE88 3704 0044 [REDACTED:phone]", {"phone": 1})


def test_plain_claim_body_is_unchanged(redactor: Redactor) -> None:
    body = claim_body("Water damage to kitchen ceiling; plumber invoice 2024-117 attached.")
    assert redactor.redact(body) == (body, {})


# --- counts, custom patterns, overlaps -----------------------------------------------------


def test_counts_per_pattern_name(redactor: Redactor) -> None:
    note = (
        "Insured jane.doe@example.com (cc bob@example.org) called from +44 20 7946 0958 "
        "and 020 7946 0958; card 4111 1111 1111 1111; SSN 123-45-6789; "
        "IBAN DE89 3704 0044 0532 0130 00; callback 555-123-4567."
    )
    out, counts = redactor.redact(claim_body(note))
    assert counts == {"email": 2, "phone": 3, "card": 1, "us_ssn": 1, "iban": 1}
    text = json.loads(out)["notes"][0]["text"]
    assert text == (
        "Insured [REDACTED:email] (cc [REDACTED:email]) called from [REDACTED:phone] "
        "and [REDACTED:phone]; card [REDACTED:card]; SSN [REDACTED:us_ssn]; "
        "IBAN [REDACTED:iban]; callback [REDACTED:phone]."
    )


def test_custom_patterns_policy_and_claim_numbers() -> None:
    custom = compile_custom_patterns(
        [
            {"name": "policy_number", "regex": r"POL-\d{6}"},
            {"name": "claim_number", "regex": r"CLM-\d{4}-\d{6}"},
        ],
        WHERE,
    )
    assert [p.name for p in custom] == ["policy_number", "claim_number"]
    assert all(isinstance(p, RedactionPattern) and p.validate is None for p in custom)
    redactor = Redactor(BUILTIN_PATTERNS + custom)
    body = claim_body("See POL-654321 and CLM-2023-000999; email jane.doe@example.com")
    out, counts = redactor.redact(body)
    assert counts == {"policy_number": 2, "claim_number": 2, "email": 1}
    data = json.loads(out)
    assert data["claim_id"] == "[REDACTED:claim_number]"
    assert data["policy"]["number"] == "[REDACTED:policy_number]"
    assert data["notes"][0]["text"] == (
        "See [REDACTED:policy_number] and [REDACTED:claim_number]; email [REDACTED:email]"
    )
    # The built-ins alone leave both numbers alone.
    assert Redactor().redact(body)[1] == {"email": 1}


def test_earlier_pattern_wins_an_overlap_and_a_span_is_replaced_once() -> None:
    claim, year_serial = compile_custom_patterns(
        [
            {"name": "claim_number", "regex": r"CLM-\d{4}-\d{6}"},
            {"name": "year_serial", "regex": r"\d{4}-\d{6}"},
        ],
        WHERE,
    )
    text = "claim CLM-2024-000123, batch 2023-000001"
    first = Redactor([claim, year_serial]).redact(text)
    assert first == (
        "claim [REDACTED:claim_number], batch [REDACTED:year_serial]",
        {"claim_number": 1, "year_serial": 1},
    )
    second = Redactor([year_serial, claim]).redact(text)
    assert second == (
        "claim CLM-[REDACTED:year_serial], batch [REDACTED:year_serial]",
        {"year_serial": 2},
    )


def test_builtins_listed_first_beat_a_custom_pattern_on_the_same_span() -> None:
    (digits,) = compile_custom_patterns([{"name": "long_number", "regex": r"\d{16}"}], WHERE)
    text = "card 4111111111111111 ref 1234567812345678"
    assert Redactor(BUILTIN_PATTERNS + (digits,)).redact(text) == (
        "card [REDACTED:card] ref [REDACTED:long_number]",
        {"card": 1, "long_number": 1},
    )
    assert Redactor((digits, *BUILTIN_PATTERNS)).redact(text) == (
        "card [REDACTED:long_number] ref [REDACTED:long_number]",
        {"long_number": 2},
    )


def test_email_wins_over_the_digits_inside_it(redactor: Redactor) -> None:
    out, counts = redactor.redact("write to 5551234567.4111111111111111@example.com")
    assert (out, counts) == ("write to [REDACTED:email]", {"email": 1})


def test_items_glued_together_are_all_redacted(redactor: Redactor) -> None:
    out, counts = redactor.redact("4111111111111111+1 555 123 4567, a@b.io+c@d.io")
    assert out == "[REDACTED:card][REDACTED:phone], [REDACTED:email][REDACTED:email]"
    assert counts == {"card": 1, "phone": 1, "email": 2}


@pytest.mark.parametrize("sep", [" ", ",", ";", ", ", "\n", " / "])
def test_lists_of_values_are_all_redacted(redactor: Redactor, sep: str) -> None:
    values = ["555-123-4567", "4111111111111111", "123-45-6789", "+44 20 7946 0958"] * 3
    out, counts = redactor.redact(sep.join(values))
    assert not any(ch.isdigit() for ch in out), out
    assert sum(counts.values()) == len(values)


def test_existing_tokens_are_kept_and_not_counted() -> None:
    (word,) = compile_custom_patterns([{"name": "word", "regex": r"REDACTED|phone"}], WHERE)
    r = Redactor(BUILTIN_PATTERNS + (word,))
    assert r.redact("was [REDACTED:phone], now phone") == (
        "was [REDACTED:phone], now [REDACTED:word]",
        {"word": 1},
    )


def test_a_broken_validator_redacts_instead_of_raising() -> None:
    def boom(text: str) -> bool:
        raise RuntimeError(text)

    r = Redactor([RedactionPattern("secret", re.compile(r"S-\d+"), boom)])
    assert r.redact("key S-123 here") == ("key [REDACTED:secret] here", {"secret": 1})


def test_a_pattern_name_that_cannot_go_in_a_token_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot go in a token"):
        Redactor([RedactionPattern("bad]name", re.compile("x"), None)])


# --- redact_bytes -------------------------------------------------------------------------


def test_redact_bytes_decodes_and_redacts(redactor: Redactor) -> None:
    body = claim_body("Insured: José Müller, jose@example.es").encode()
    out, counts, truncated = redactor.redact_bytes(body, 64 * 1024)
    assert (counts, truncated) == ({"email": 1}, False)
    assert "José Müller, [REDACTED:email]" in out


def test_redact_bytes_truncates_before_redacting(redactor: Redactor) -> None:
    data = b'{"email": "jane.doe@example.com", "tail": "' + b"x" * 100 + b'"}'
    out, counts, truncated = redactor.redact_bytes(data, 40)
    assert (out, counts, truncated) == ('{"email": "[REDACTED:email]", "tail"', {"email": 1}, True)
    # Exactly at the limit, or under it: not truncated.
    assert redactor.redact_bytes(b"hello", 5) == ("hello", {}, False)
    assert redactor.redact_bytes(b"", 10) == ("", {}, False)
    assert redactor.redact_bytes(b"hello", 0) == ("", {}, True)
    assert redactor.redact_bytes(b"hello", -1) == ("", {}, True)


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        ("jane.doe@example.com", 3),
        ("jane.doe@example.com", 9),
        ("4111 1111 1111 1111", 14),
        ("DE89 3704 0044 0532 0130 00", 20),
        ("+44 20 7946 0958", 10),
    ],
)
def test_a_value_split_by_the_limit_is_left_out_whole(
    redactor: Redactor, value: str, limit: int
) -> None:
    prefix = '{"note": "call '
    data = (prefix + value + ' today"}').encode()
    out, counts, truncated = redactor.redact_bytes(data, len(prefix) + limit)
    assert (out, counts, truncated) == (prefix, {}, True)


def test_redact_bytes_drops_a_character_cut_by_the_limit(redactor: Redactor) -> None:
    data = "prénom".encode()  # é is two bytes: 3 and 4
    assert redactor.redact_bytes(data, 3) == ("pr", {}, True)
    assert redactor.redact_bytes(data, 4) == ("pré", {}, True)


def test_redact_bytes_replaces_invalid_utf8(redactor: Redactor) -> None:
    data = "Café claim, call 555-123-4567".encode("latin-1")
    out, counts, truncated = redactor.redact_bytes(data, 1000)
    assert out == "Caf\ufffd claim, call [REDACTED:phone]"
    assert (counts, truncated) == ({"phone": 1}, False)


def test_redact_bytes_binary_placeholder(redactor: Redactor) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    assert redactor.redact_bytes(png, 64 * 1024) == ("[binary body: 1040 bytes]", {}, False)
    # the size is the whole body's, and truncated still says the body was longer
    assert redactor.redact_bytes(png, 100) == ("[binary body: 1040 bytes]", {}, True)
    noise = bytes(random.Random(1).randrange(128, 256) for _ in range(500))
    assert redactor.redact_bytes(noise, 1000) == ("[binary body: 500 bytes]", {}, False)
    controls = bytes(range(1, 9)) * 20
    assert redactor.redact_bytes(controls, 1000) == ("[binary body: 160 bytes]", {}, False)


# --- compile_custom_patterns errors -------------------------------------------------------


def config_error(specs: Sequence[Mapping[str, object]]) -> str:
    with pytest.raises(ConfigError) as info:
        compile_custom_patterns(specs, WHERE)
    return str(info.value)


GOOD: dict[str, object] = {"name": "policy_number", "regex": r"POL-\d{6}"}


def test_missing_name() -> None:
    msg = config_error([GOOD, {"regex": r"CLM-\d+"}])
    assert msg == f"{WHERE}[1].name: is required"


def test_missing_regex() -> None:
    msg = config_error([{"name": "claim_number"}])
    assert msg == f"{WHERE}[0].regex: is required"


def test_invalid_regex_names_the_re_error() -> None:
    msg = config_error([GOOD, {"name": "claim_number", "regex": r"CLM-(\d+"}])
    assert msg.startswith(f"{WHERE}[1].regex: 'CLM-(\\\\d+' is not a valid regular expression: ")
    assert "missing ), unterminated subpattern at position 4" in msg


@pytest.mark.parametrize("regex", [r"\d*", r"POL-\d+|", r"(?:x)?", r"\b"])
def test_regex_matching_the_empty_string(regex: str) -> None:
    msg = config_error([{"name": "loose", "regex": regex}])
    assert msg.startswith(f"{WHERE}[0].regex: {regex!r} matches the empty string")


def test_empty_or_non_string_regex() -> None:
    assert config_error([{"name": "a", "regex": ""}]) == (
        f"{WHERE}[0].regex: '' must be a non-empty string"
    )
    assert config_error([{"name": "a", "regex": 5}]) == (
        f"{WHERE}[0].regex: 5 must be a non-empty string"
    )


def test_duplicate_name() -> None:
    msg = config_error([GOOD, {"name": "policy_number", "regex": r"P\d{8}"}])
    assert msg == f"{WHERE}[1].name: 'policy_number' is already used by redaction.patterns[0]"


@pytest.mark.parametrize("name", ["email", "phone", "card", "us_ssn", "iban"])
def test_builtin_name(name: str) -> None:
    msg = config_error([{"name": name, "regex": r"X-\d+"}])
    assert msg == (
        f"{WHERE}[0].name: {name!r} is a built-in pattern name "
        "(built-ins: card, email, iban, phone, us_ssn)"
    )


@pytest.mark.parametrize("name", ["", "has space", "bad]", "9lives", 7])
def test_invalid_name(name: object) -> None:
    msg = config_error([{"name": name, "regex": r"X-\d+"}])
    assert msg.startswith(f"{WHERE}[0].name: {name!r} is not a valid pattern name")


def test_unknown_key_and_non_table() -> None:
    msg = config_error([{**GOOD, "regexp": "x"}])
    assert msg == f"{WHERE}[0].regexp: unknown key (known keys: name, regex)"
    with pytest.raises(ConfigError) as info:
        compile_custom_patterns(["POL-\\d{6}"], WHERE)  # type: ignore[list-item]
    assert str(info.value) == f"{WHERE}[0]: must be a table with name and regex"


def test_every_mistake_is_reported_at_once() -> None:
    msg = config_error(
        [
            {"name": "email", "regex": "x+"},
            {"regex": "("},
            GOOD,
            {"name": "policy_number", "regex": "y*"},
        ]
    )
    lines = msg.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "redaction.patterns[0].name",
        "redaction.patterns[1].name",
        "redaction.patterns[1].regex",
        "redaction.patterns[3].name",
        "redaction.patterns[3].regex",
    ]


def test_no_patterns_is_fine() -> None:
    assert compile_custom_patterns([], WHERE) == ()


# --- properties ---------------------------------------------------------------------------

FRAGMENTS = [
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "4111111111111111",
    "4111 1111 1111 1112",
    "378282246310005",
    "DE89 3704 0044 0532 0130 00",
    "DE88 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "123-45-6789",
    "000-12-3456",
    "+1 555 123 4567",
    "+44 20 7946 0958",
    "(555) 123-4567",
    "555-123-4567",
    "020 7946 0958",
    "POL-123456",
    "CLM-2024-000123",
    "2024-01-15T10:30:00Z",
    "1234.56",
    "550e8400-e29b-41d4-a716-446655440000",
    "[REDACTED:card]",
    "[REDACTED:",
    "DONE",
    "12",
    "0",
    "x",
    "Z",
    "é",
]
GLUE = ["", "", " ", "  ", "-", ".", ",", ":", "/", "+", "(", ")", "@", "'", '"', "\n", "1", "a"]


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(rng.choice(FRAGMENTS) + rng.choice(GLUE) for _ in range(rng.randint(1, 8)))
        for _ in range(count)
    ]


@pytest.mark.parametrize("seed", range(4))
def test_redacting_twice_is_the_same_as_once(seed: int) -> None:
    custom = compile_custom_patterns(
        [GOOD, {"name": "claim_number", "regex": r"CLM-\d{4}-\d{6}"}], WHERE
    )
    redactor = Redactor(BUILTIN_PATTERNS + custom)
    for text in random_texts(seed, 1500):
        once, counts = redactor.redact(text)
        twice, more = redactor.redact(once)
        assert (twice, more) == (once, {}), text
        assert sum(counts.values()) == once.count("[REDACTED:") - text.count("[REDACTED:")


def test_redact_never_raises_on_odd_text(redactor: Redactor) -> None:
    rng = random.Random(7)
    alphabet = "0123456789 -.+()@aZ_\"'[]:,/\n\t\x00\ud800\U0001f600é४"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        out, counts = redactor.redact(text)
        assert isinstance(out, str) and all(v > 0 for v in counts.values())
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
        result = redactor.redact_bytes(data, rng.randint(-1, 70))
        assert isinstance(result[0], str)
