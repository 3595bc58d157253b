"""The validity period of an X.509 certificate, read from its DER bytes.

The TLS check must read the expiry of certificates Python's ssl module refuses to verify
(expired, self-signed, wrong name): only then can it say "expired 3 days ago" rather than
"handshake failed". With verification off, `getpeercert()` returns only the DER bytes, so this
module walks just enough DER (RFC 5280 section 4.1) to reach `validity`:

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
        [0] version OPTIONAL, serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE,
        validity SEQUENCE { notBefore Time, notAfter Time }, ... } ... }
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

_SEQUENCE = 0x30
_CONTEXT_0 = 0xA0
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


@dataclass(frozen=True, slots=True)
class Validity:
    not_before: datetime
    not_after: datetime


def _read_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at offset."""
    if offset + 2 > len(data):
        raise ValueError("certificate is cut short")
    tag = data[offset]
    length = data[offset + 1]
    position = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or position + count > len(data):
            raise ValueError("certificate has a bad length field")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise ValueError("certificate is cut short")
    return tag, position, end


def _parse_time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    if tag == _UTC_TIME:
        # RFC 5280: two-digit years 50-99 are 19xx, 00-49 are 20xx.
        parsed = datetime.strptime(text, "%y%m%d%H%M%SZ").replace(tzinfo=UTC)
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
        return parsed
    if tag == _GENERALIZED_TIME:
        return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    raise ValueError(f"certificate time has tag {tag:#x}, not UTCTime or GeneralizedTime")


def parse_validity(der: bytes) -> Validity:
    tag, cert_start, _ = _read_element(der, 0)
    if tag != _SEQUENCE:
        raise ValueError("not a DER certificate")
    tag, position, _ = _read_element(der, cert_start)
    if tag != _SEQUENCE:
        raise ValueError("certificate has no tbsCertificate")
    tag, _, end = _read_element(der, position)
    if tag == _CONTEXT_0:
        position = end
    # serialNumber, signature, issuer: skipped whole.
    for _ in range(3):
        _, _, position = _read_element(der, position)
    tag, position, _ = _read_element(der, position)
    if tag != _SEQUENCE:
        raise ValueError("certificate has no validity")
    before_tag, start, end = _read_element(der, position)
    not_before = _parse_time(before_tag, der[start:end])
    after_tag, start, end = _read_element(der, end)
    not_after = _parse_time(after_tag, der[start:end])
    return Validity(not_before=not_before, not_after=not_after)
