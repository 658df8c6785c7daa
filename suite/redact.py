"""Redaction of personal data (emails, phones, cards, SSNs, IBANs, custom patterns) in bodies.

Must never let a matched value through, raise on any text, or do I/O: it runs before disk.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

from suite.errors import ConfigError


class RedactionPattern(NamedTuple):
    """A named regex; a match is replaced only if `validate` (when given) accepts its text."""

    name: str
    regex: re.Pattern[str]
    validate: Callable[[str], bool] | None


TOKEN_PREFIX = "[REDACTED:"
# Names end up inside tokens, so they cannot contain ']' or spaces.
PATTERN_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
# Tokens already in a text (ours, or a client's) are never matched again: idempotence.
_TOKEN_RE = re.compile(r"\[REDACTED:[A-Za-z][A-Za-z0-9_.-]{0,63}\]")
# A candidate that fails its check is retried up to this many times, each time cut at
# its last space ("+1 555 123 4567 2024-01-15" still yields the phone number; cutting at
# dots or dashes would turn "+123456789.90" into a phone).
_MAX_SHRINK = 8
# Replacing a span changes its neighbours' context; passes repeat until nothing changes.
_MAX_PASSES = 8
# Later passes only look this near the new tokens: a match that ends at a token can start
# as far back as the longest built-in (an email); one that starts after it starts close.
_RESCAN_BEFORE = 384
_RESCAN_AFTER = 64
# redact_bytes reads this much past max_bytes to find a value that the limit splits.
_SPLIT_MATCH_MARGIN = 512

_DIGITS = "0123456789"
_LUHN_DOUBLED = {d: (2 * int(d)) - (9 if int(d) > 4 else 0) for d in _DIGITS}


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check of the digits in `digits`; spaces and dashes are ignored."""
    compact = digits.replace(" ", "").replace("-", "")
    if not (compact.isascii() and compact.isdigit()):
        return False
    # From the right: every second digit is doubled (and 9 taken off when over 9).
    total = sum(map(int, compact[-1::-2])) + sum(map(_LUHN_DOUBLED.__getitem__, compact[-2::-2]))
    return total % 10 == 0


_IBAN_SHAPE_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", re.ASCII)
_IBAN_LETTER_VALUES = {ord(c): str(ord(c) - ord("A") + 10) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def iban_ok(text: str) -> bool:
    """ISO 13616 check: country, 2 check digits, 11-30 alphanumerics, mod 97 == 1.

    Spaces are ignored and letters may be lower case.
    """
    compact = text.replace(" ", "").upper()
    if not _IBAN_SHAPE_RE.fullmatch(compact):
        return False
    # Move the first four characters to the end, letters become 10-35, then mod 97.
    return int((compact[4:] + compact[:4]).translate(_IBAN_LETTER_VALUES)) % 97 == 1


def _ssn_shape_ok(text: str) -> bool:
    area, group, serial = text[:3], text[4:6], text[7:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _card_ok(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _phone_ok(text: str) -> bool:
    n = sum(map(text.count, _DIGITS))
    if not 9 <= n <= 15:
        return False
    # "+12345678.90" is a signed amount, not "+1 2345678.90".
    dot = text.rfind(".")
    return not (
        dot > 0
        and text.count(".") == 1
        and len(text) - dot <= 3
        and " " not in text
        and "-" not in text
    )


# Each regex starts with a plain character class (so `re` skips ahead quickly) and puts its
# "not in the middle of a word or number" check in a lookbehind right after that first char.
_EMAIL_RE = re.compile(
    r"[\w%+'-](?<![\w%+'-][\w%+'-])"  # the local part starts a run
    r"[\w.%+'-]{0,63}+"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}+(?<=[A-Za-z0-9]))?\.)+[A-Za-z]{2,63}"
    r"(?![\w-])"
)
_CARD_RE = re.compile(
    r"[0-9](?<![\w+-][0-9])(?<![0-9]\.[0-9])"
    r"(?:"
    r"(?<=[2-6])[0-9]{12,18}"  # ungrouped: IIN 2-6, so epoch-ms stamps and ids stay
    r"|[0-9]{3}(?P<c4>[ -])[0-9]{4}(?P=c4)[0-9]{4}(?P=c4)[0-9]{1,4}(?:(?P=c4)[0-9]{1,3})?"
    r"|[0-9]{3}(?P<c6>[ -])[0-9]{6}(?P=c6)[0-9]{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r")"
    r"(?!\w)(?!\.[0-9])"
)
_IBAN_RE = re.compile(
    r"[A-Z](?<![\w][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?!\w)"
)
_SSN_RE = re.compile(
    r"[0-9](?<![\w+-][0-9])(?<![0-9]\.[0-9])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![\w-])(?!\.[0-9])"
)
_PHONE_RE = re.compile(
    r"[+(0-9](?<![\w+@-][(0-9])(?<![+@]\+)(?<![0-9]\.[+(0-9])"
    r"(?:"
    # +CC, an optional (area), then digit groups split by one space, dot or dash
    r"(?<=\+)[0-9]{1,3}(?:[ .-]?\([0-9]{1,5}\))?[ .-]?[0-9]++(?:[ .-][0-9]++){0,6}"
    # (area) local, e.g. (555) 123-4567, (020) 7946 0958, (11) 98765-4321
    r"|(?<=\()[0-9]{2,5}\)[ .-]?[0-9]++(?:[ .-][0-9]++){0,4}"
    # North American 555-123-4567 / 555.123.4567 / 555 123 4567, optional leading 1
    r"|(?<=1)(?P<n1>[ .-])[0-9]{3}(?P<n2>[ .-])[0-9]{3}(?P=n2)[0-9]{4}"
    r"|(?<=[0-9])[0-9]{2}(?P<n3>[ .-])[0-9]{3}(?P=n3)[0-9]{4}"
    # trunk-prefix national numbers: 020 7946 0958, 07700 900123, 01 23 45 67 89
    r"|(?<=0)[1-9][0-9]{0,3}(?P<t>[ .-])[0-9]{2,8}(?:(?P=t)[0-9]{2,4}){0,4}"
    r")"
    r"(?!\w)(?![.:/-]?[0-9])"
)

BUILTIN_PATTERNS: tuple[RedactionPattern, ...] = (
    # Most specific first: on overlaps, earlier patterns win.
    RedactionPattern("email", _EMAIL_RE, None),
    RedactionPattern("card", _CARD_RE, _card_ok),
    RedactionPattern("iban", _IBAN_RE, iban_ok),
    RedactionPattern("us_ssn", _SSN_RE, _ssn_shape_ok),
    RedactionPattern("phone", _PHONE_RE, _phone_ok),
)
BUILTIN_NAMES = frozenset(p.name for p in BUILTIN_PATTERNS)

# `re` spends most of its time starting attempts, so the built-ins that begin with a digit,
# '+', '(' or a capital share one scan (_GATE_RE) instead of one scan each. The gate fires
# wherever any of them can start (same lookbehinds; 8 more digits follow, at most two
# separators apart, or a capital and two digits),
# so trying each pattern there with .match finds exactly what finditer would.
_GATE_RE = re.compile(
    r"[+(0-9A-Z](?<![\w+-][(0-9])(?<!\+\+)(?<!\w[A-Z])(?=[A-Z][0-9]{2}|(?:[ .()-]{0,2}[0-9]){8})"
)
_GATE_LOOKAHEAD = 24
_PHONE_FIRST = "+(0123456789"
_START_PUNCT = "%+'(-"  # besides word characters, what a built-in match can start with
_INERT = '"\n\r\t <>{}[]=;,|&'  # no built-in match starts, ends or looks through these
_GATED_STARTS: dict[re.Pattern[str], str] = {
    _CARD_RE: _DIGITS,
    _IBAN_RE: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    _SSN_RE: _DIGITS,
    _PHONE_RE: _PHONE_FIRST,
}
_EMAIL_LOCAL_MAX = 64
_EMAIL_DOMAIN_MAX = 320  # generous: a domain is at most 253 characters
# The domain half of _EMAIL_RE: it starts with '@', which `re` finds fast.
_AT_DOMAIN_RE = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}+(?<=[A-Za-z0-9]))?\.)+[A-Za-z]{2,63}(?![\w-])"
)


def _email_spans(text: str, windows: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """What _EMAIL_RE.finditer finds (starting in the windows): domains first, then the
    local part just before each; much faster than trying every position."""
    n = len(text)
    last = 0
    for lo, hi in windows:
        endpos = n if hi == n else min(n, hi + _EMAIL_LOCAL_MAX + _EMAIL_DOMAIN_MAX)
        for domain in _AT_DOMAIN_RE.finditer(text, max(lo, last), endpos):
            at, domain_end = domain.span()
            if at >= hi + _EMAIL_LOCAL_MAX:
                break
            if domain_end == endpos < n:  # endpos may have cut it short: match again freely
                full = _AT_DOMAIN_RE.match(text, at)
                if full is None:
                    continue
                domain_end = full.end()
            m = _EMAIL_RE.search(text, max(lo, last, at - _EMAIL_LOCAL_MAX), domain_end)
            if m is not None and m.start() < min(at, hi):
                last = m.end()
                yield m.start(), last


_CUSTOM_KEYS = ("name", "regex")
_EMPTY_PROBES = ("", " ", "a", "0", "\n", "a b")


def compile_custom_patterns(
    specs: Sequence[Mapping[str, object]], where: str
) -> tuple[RedactionPattern, ...]:
    """Compile `[[redaction.patterns]]` tables ({name, regex}); ConfigError lists every mistake.

    `where` names the list in messages, e.g. "gateway.toml: redaction.patterns".
    """
    problems: list[str] = []
    compiled: list[RedactionPattern] = []
    seen: dict[str, int] = {}
    short = where.rsplit(": ", 1)[-1]
    for i, spec in enumerate(specs):
        at = f"{where}[{i}]"
        if not isinstance(spec, Mapping):
            problems.append(f"{at}: must be a table with name and regex")
            continue
        for key in spec:
            if key not in _CUSTOM_KEYS:
                problems.append(f"{at}.{key}: unknown key (known keys: {', '.join(_CUSTOM_KEYS)})")
        name = spec.get("name")
        name_ok = False
        if name is None:
            problems.append(f"{at}.name: is required")
        elif not isinstance(name, str) or not PATTERN_NAME_RE.match(name):
            problems.append(
                f"{at}.name: {name!r} is not a valid pattern name "
                "(a letter, then letters, digits, '_', '.', '-'; at most 64)"
            )
        elif name in BUILTIN_NAMES:
            problems.append(
                f"{at}.name: {name!r} is a built-in pattern name "
                f"(built-ins: {', '.join(sorted(BUILTIN_NAMES))})"
            )
        elif name in seen:
            problems.append(f"{at}.name: {name!r} is already used by {short}[{seen[name]}]")
        else:
            seen[name] = i
            name_ok = True
        regex = spec.get("regex")
        rx: re.Pattern[str] | None = None
        if regex is None:
            problems.append(f"{at}.regex: is required")
        elif not isinstance(regex, str) or not regex:
            problems.append(f"{at}.regex: {regex!r} must be a non-empty string")
        else:
            try:
                rx = re.compile(regex)
            except (re.error, OverflowError, RecursionError) as e:
                problems.append(f"{at}.regex: {regex!r} is not a valid regular expression: {e}")
            else:
                if _matches_empty(rx):
                    problems.append(
                        f"{at}.regex: {regex!r} matches the empty string "
                        "(it would match everywhere; use + instead of *, or add a literal)"
                    )
                    rx = None
        if name_ok and rx is not None:
            assert isinstance(name, str)
            compiled.append(RedactionPattern(name, rx, None))
    if problems:
        raise ConfigError("\n".join(problems))
    return tuple(compiled)


def _matches_empty(rx: re.Pattern[str]) -> bool:
    return any(m.start() == m.end() for probe in _EMPTY_PROBES for m in rx.finditer(probe))


def _accepts(validate: Callable[[str], bool], text: str) -> bool:
    try:
        return bool(validate(text))
    except Exception:
        return True  # a broken check must not let data through: redact


class Redactor:
    """Replaces every match with `[REDACTED:<name>]`; on overlaps, earlier patterns win."""

    def __init__(self, patterns: Sequence[RedactionPattern] = BUILTIN_PATTERNS) -> None:
        self.patterns: tuple[RedactionPattern, ...] = tuple(patterns)
        for p in self.patterns:
            if not PATTERN_NAME_RE.match(p.name):
                raise ValueError(f"pattern name {p.name!r} cannot go in a token")
        # The built-ins found through _GATE_RE: for each first character, the ones that can
        # start with it, as (number among the gated, index in patterns, pattern).
        gated = [(i, p) for i, p in enumerate(self.patterns) if p.regex in _GATED_STARTS]
        self._gated_index = frozenset(i for i, _ in gated)
        self._gated_by_first: dict[str, list[tuple[int, int, RedactionPattern]]] = {}
        for j, (i, p) in enumerate(gated):
            for ch in _GATED_STARTS[p.regex]:
                self._gated_by_first.setdefault(ch, []).append((j, i, p))

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """The redacted text and how many spans each pattern replaced."""
        counts: dict[str, int] = {}
        windows = [(0, len(text))]
        for _ in range(_MAX_PASSES):
            text, unsettled = self._one_pass(text, counts, windows)
            if not unsettled:
                break
            # A token changes what its neighbours see ("4111111111111111+1 555 123 4567":
            # the phone follows a digit until the card is replaced), so look there again.
            windows = _merge_windows(unsettled, len(text))
        return text, counts

    def redact_bytes(self, data: bytes, max_bytes: int) -> tuple[str, dict[str, int], bool]:
        """Decode (UTF-8, errors replaced) at most `max_bytes` bytes, then redact.

        Returns (text, counts, truncated); truncated means the body was longer than
        max_bytes, and a value that the limit splits is left out whole. A binary body (NUL
        bytes, or mostly control/undecodable characters) becomes "[binary body: N bytes]".
        """
        size = len(data)
        limit = max(0, max_bytes)
        truncated = size > limit
        chunk = data[:limit] if truncated else data
        if b"\x00" in chunk:
            return f"[binary body: {size} bytes]", {}, truncated
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        # Not final when cut: a character split by the limit is dropped, not made U+FFFD.
        text = decoder.decode(chunk, final=not truncated)
        if _mostly_not_text(text):
            return f"[binary body: {size} bytes]", {}, truncated
        if truncated and text:
            # A value split by the limit ("jane.doe@exa") would not match any more: read a
            # little further, and if a match runs across the limit, cut before it instead.
            cut = len(text)
            more = decoder.decode(data[limit : limit + _SPLIT_MATCH_MARGIN], final=False)
            replaced, _ = self._choose(text + more, [(max(0, cut - _SPLIT_MATCH_MARGIN), cut)])
            for start, end, _name in replaced:
                if start < cut < end:
                    text = text[:start]
                    break
        out, counts = self.redact(text)
        return out, counts, truncated

    def _one_pass(
        self, text: str, counts: dict[str, int], windows: list[tuple[int, int]]
    ) -> tuple[str, list[tuple[int, int]]]:
        """Redact the matches starting in `windows` once.

        Returns the new text and where, in it, the tokens are whose neighbourhood another
        pass must look at again (their edges touch text a pattern reads, or a candidate
        that failed its check, was cut short or lost an overlap ran into them).
        """
        replaced, loose = self._choose(text, windows)
        if not replaced:
            return text, []
        unsettled = [not _quiet_edges(text, start, end) for start, end, _ in replaced]
        starts = [start for start, _, _ in replaced]
        for lo, hi in loose:
            j = max(0, bisect.bisect_right(starts, lo) - 1)
            if replaced[j][0] <= lo and hi <= replaced[j][1]:
                continue  # inside one replaced span: nothing of it is left to match
            while j < len(replaced) and replaced[j][0] < hi:
                if replaced[j][1] > lo:
                    unsettled[j] = True
                j += 1
        parts: list[str] = []
        again: list[tuple[int, int]] = []
        pos = 0
        out_len = 0
        for (start, end, name), look in zip(replaced, unsettled, strict=True):
            kept = text[pos:start]
            token = f"[REDACTED:{name}]"
            parts.append(kept)
            parts.append(token)
            out_len += len(kept)
            if look:
                again.append((out_len, out_len + len(token)))
            out_len += len(token)
            pos = end
            counts[name] = counts.get(name, 0) + 1
        parts.append(text[pos:])
        return "".join(parts), again

    def _choose(
        self, text: str, windows: list[tuple[int, int]]
    ) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
        """Spans to replace (start, end, name), sorted, and the candidates that were not
        taken whole (failed their check, were cut short, or lost an overlap)."""
        found: list[list[tuple[int, int, int]]] = [[] for _ in self.patterns]
        loose: list[tuple[int, int]] = []
        if self._gated_index:
            self._scan_gated(text, windows, found, loose)
        for i, pat in enumerate(self.patterns):
            if i not in self._gated_index:
                if pat.regex is _EMAIL_RE:
                    spans = _email_spans(text, windows)
                else:
                    spans = _window_spans(pat.regex, text, windows)
                for start, end in spans:
                    _collect(pat, text, start, end, found[i], loose)
        # Accepted spans (start, end, pattern name, or "" for a token already there), sorted.
        taken: list[tuple[int, int, str]] = []
        if TOKEN_PREFIX in text:
            taken = [(m.start(), m.end(), "") for m in _TOKEN_RE.finditer(text)]
        for pat, candidates in zip(self.patterns, found, strict=True):
            new: list[tuple[int, int, str]] = []
            k = 0
            for start, end, raw_end in candidates:
                while k < len(taken) and taken[k][1] <= start:
                    k += 1
                if k < len(taken) and taken[k][0] < end:
                    loose.append((start, raw_end))  # an earlier pattern took part of it
                    continue
                new.append((start, end, pat.name))
            if new:
                taken = sorted(taken + new) if taken else new
        return [span for span in taken if span[2]], loose

    def _scan_gated(
        self,
        text: str,
        windows: list[tuple[int, int]],
        found: list[list[tuple[int, int, int]]],
        loose: list[tuple[int, int]],
    ) -> None:
        """Candidates of the gated built-ins: what each one's finditer would give."""
        n = len(text)
        last_end = [0] * len(self._gated_index)
        by_first = self._gated_by_first
        for lo, hi in windows:
            for gate in _GATE_RE.finditer(text, lo, min(n, hi + _GATE_LOOKAHEAD)):
                start = gate.start()
                if start >= hi:
                    break
                for j, i, pat in by_first.get(text[start], ()):
                    if start < last_end[j]:
                        continue
                    if pat.regex is _SSN_RE and text[start + 3 : start + 4] != "-":
                        continue  # cheaper than a failed match: most gate hits are not SSNs
                    m = pat.regex.match(text, start)
                    if m is not None and m.end() > start:
                        last_end[j] = m.end()
                        _collect(pat, text, start, m.end(), found[i], loose)


def _collect(
    pat: RedactionPattern,
    text: str,
    start: int,
    end: int,
    found: list[tuple[int, int, int]],
    loose: list[tuple[int, int]],
) -> None:
    """Keep a candidate as (start, end, raw end) if it passes the check, maybe cut short."""
    if start == end:
        return
    if pat.validate is None:
        found.append((start, end, end))
        return
    checked = _validated_end(pat, text, start, end)
    if checked is not None:
        found.append((start, checked, end))
    if checked != end:
        loose.append((start, end))


def _window_spans(
    rx: re.Pattern[str], text: str, windows: list[tuple[int, int]]
) -> Iterator[tuple[int, int]]:
    """What rx.finditer finds, limited to matches that start inside the sorted windows."""
    n = len(text)
    last = 0
    for lo, hi in windows:
        endpos = n if hi == n else min(n, hi + _RESCAN_BEFORE)
        for m in rx.finditer(text, max(lo, last), endpos):
            if m.start() >= hi:
                break
            if m.start() < last:
                continue
            span = m.span()
            if span[1] == endpos < n:  # endpos may have cut it short: match again freely
                full = rx.match(text, span[0])
                if full is None:
                    continue
                span = full.span()
            last = span[1]
            yield span


def _merge_windows(spans: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Where a later pass looks: before each token (a match may end at it) and just after."""
    windows: list[tuple[int, int]] = []
    for start, end in spans:
        lo, hi = max(0, start - _RESCAN_BEFORE), min(n, end + _RESCAN_AFTER)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    return windows


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _quiet_edges(text: str, start: int, end: int) -> bool:
    """Whether replacing text[start:end] leaves what the built-ins' lookarounds see unchanged.

    They read at most two characters into a neighbour: a match may start right after the
    span (or after a '.' when it starts with a digit, '+' or '('), or end right before it
    (or before one of '.:/-').
    """
    after = text[end : end + 1]
    before = text[start - 1 : start]  # "" at either end of the text, which is inert too
    if after in _INERT and before in _INERT:
        return True
    if after and (_is_word(after) or after in _START_PUNCT):
        return False
    if after == "." and (text[end + 1 : end + 2] or "x") in _PHONE_FIRST:
        return False
    if before and _is_word(before):
        return False
    return not (before and before in ".:/-" and start >= 2 and _is_word(text[start - 2]))


def _validated_end(pat: RedactionPattern, text: str, start: int, end: int) -> int | None:
    """End of the longest candidate from `start` that passes the check, cut only at spaces."""
    assert pat.validate is not None
    for _ in range(_MAX_SHRINK):
        if _accepts(pat.validate, text[start:end]):
            return end
        cut = text.rfind(" ", start + 1, end)
        if cut <= start:
            return None
        m = pat.regex.match(text, start, cut)
        if m is None or m.end() <= start:
            return None
        end = m.end()
    return None


_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufffd]")
_SNIFF_CHARS = 4096


def _mostly_not_text(text: str) -> bool:
    """More than 30% control or undecodable characters in the first few thousand."""
    sample = text[:_SNIFF_CHARS]
    bad = len(_CONTROL_RE.findall(sample))
    return bad * 10 > len(sample) * 3
