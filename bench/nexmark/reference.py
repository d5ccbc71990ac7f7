#!/usr/bin/env python3
"""Straightforward reference answers of the Nexmark queries over an events file (one JSON
object per line, as nexmark-gen writes): each query's output rows, in input order, as dicts.
usage: reference.py QUERY EVENTS  (prints the rows as JSON lines)"""
import json, sys
from decimal import Decimal


def bids(events):
    return (e for e in events if e["type"] == "bid")


def q0(events):
    return [{k: b[k] for k in ("auction", "bidder", "price", "dateTime", "extra")} for b in bids(events)]


def q1(events):
    # As in Nexmark's SQL: BIGINT * 0.908 is an exact DECIMAL with 3 places.
    return [{"auction": b["auction"], "bidder": b["bidder"], "price": Decimal(b["price"]) * Decimal("0.908"),
             "dateTime": b["dateTime"], "extra": b["extra"]} for b in bids(events)]


def normalise(query, row):
    """A pipeline's output row in the reference's terms: q1's price, computed as a double, is
    taken at the query's scale (3 places), which a double holds exactly at Nexmark's prices."""
    if query == "q1" and "price" in row:
        row = dict(row, price=Decimal(repr(row["price"])).quantize(Decimal("0.001")))
    return row


def q2(events):
    return [{"auction": b["auction"], "price": b["price"]} for b in bids(events) if b["auction"] % 123 == 0]


QUERIES = {"q0": q0, "q1": q1, "q2": q2}


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


if __name__ == "__main__":
    for row in QUERIES[sys.argv[1]](load(sys.argv[2])):
        print(json.dumps(row, separators=(",", ":"), default=str))
