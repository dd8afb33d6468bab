"""Checking a published draw from one's own token: standard library only, so that
`waitingroom verify-draw` starts fast and anyone can read what it does (see draw.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import urllib.request
from collections.abc import Sequence
from typing import Any


class DrawMismatch(Exception):
    """The published draw does not hold together, or does not contain the token."""


def mac(seed: bytes, token: str) -> str:
    """A token's draw value: HMAC-SHA256 keyed by the seed over the token's text, in hex."""
    return hmac.new(seed, token.encode(), hashlib.sha256).hexdigest()


def verify(published: dict[str, Any], token: str) -> int:
    """The token's rank (1 = first) in a published draw; DrawMismatch if anything is off."""
    seed_hex, commitment, hmacs = (published.get("seed"), published.get("commitment"),
                                   published.get("hmacs"))
    if not isinstance(commitment, str):
        raise DrawMismatch("no commitment in the published draw")
    if not isinstance(seed_hex, str) or not isinstance(hmacs, list):
        raise DrawMismatch("the draw has not taken place yet: no seed or list published")
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        raise DrawMismatch("the seed is not hex") from None
    if hashlib.sha256(seed).hexdigest() != commitment.lower():
        raise DrawMismatch("sha256(seed) does not match the commitment")
    if any(not isinstance(h, str) for h in hmacs) or hmacs != sorted(set(hmacs)):
        raise DrawMismatch("the list of HMACs is not sorted ascending without repeats")
    mine = mac(seed, token)
    lo, hi = 0, len(hmacs)
    while lo < hi:  # the list is sorted: a binary search
        mid = (lo + hi) // 2
        if hmacs[mid] < mine:
            lo = mid + 1
        else:
            hi = mid
    if lo == len(hmacs) or hmacs[lo] != mine:
        raise DrawMismatch(f"HMAC-SHA256(seed, token) = {mine} is not in the list")
    return lo + 1


def main(tokens: Sequence[str], source: str) -> int:
    """Check a published draw (a URL or a saved JSON file) and print each token's rank."""
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=30) as answer:
                published = json.load(answer)
        else:
            with open(source, encoding="utf-8") as f:
                published = json.load(f)
        if not isinstance(published, dict):
            raise DrawMismatch("the published draw is not a JSON object")
        ranks = [verify(published, token) for token in tokens]
    except (OSError, ValueError, DrawMismatch) as e:
        print(f"waitingroom verify-draw: {e}", file=sys.stderr)
        return 1
    print(f"seed matches the commitment {published['commitment']}", flush=True)
    for token, rank in zip(tokens, ranks, strict=True):
        print(f"{token}: rank {rank} of {len(published['hmacs'])} drawn at the opening of "
              f"concert {published.get('concert_id')} ({published.get('opens_at')})", flush=True)
    return 0
