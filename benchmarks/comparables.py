"""Comparable listings at scale: build the index from N synthetic training listings, save it as a
bundle does, then in a fresh process (as the service's explanation process would) load it and look
up listings it has not seen; plus, on the genuine rows, how often a training listing finds itself
first. The synthetic titles use a few hundred words; a second index adds a made-up word to each
title (drawn by a Zipf law from a million), which fills the vocabulary to its cap as genuine titles
at this size would. Limits (issue 17): lookup p50 <= 10 ms, load <= 30 s, RSS <= 1.5 GiB at 1.5 M
listings.

    .venv/bin/python benchmarks/comparables.py --rows 1500000 --output docs/benchmarks/comparables.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from price_alchemy_assets.listings.synthetic import synthetic_market
from price_alchemy_assets.model.comparables import ComparableListings

REPO = Path(__file__).resolve().parents[1]
GENUINE = REPO.parent / "shared" / "data" / "mercari_train_sample.tsv"
QUERIES = 2_000

_LOOKUP = """
import json, sys, time
import numpy as np, pandas as pd
started = time.perf_counter()
from price_alchemy_assets.model.comparables import ComparableListings
index = ComparableListings.load(sys.argv[1])
loaded = time.perf_counter() - started
queries = pd.read_parquet(sys.argv[2]).to_dict("records")
index.find(queries[0])
times = []
for query in queries:
    start = time.perf_counter()
    index.find(query)
    times.append(time.perf_counter() - start)
with open("/proc/self/status") as status:
    memory = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith("Vm")}
rss, peak = memory["VmRSS"], memory["VmHWM"]
ms = np.array(times) * 1000
print(json.dumps({"load s": loaded, "p50 ms": float(np.median(ms)), "p99 ms": float(np.percentile(ms, 99)),
                  "RSS MB": rss, "peak RSS MB": peak}))
"""


def folder_mb(folder: str | Path) -> float:
    """What the files under `folder` take on disk, in MiB."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file()) / 2**20


def measure(listings: pd.DataFrame, queries: pd.DataFrame, label: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="price-alchemy-comparables-") as folder:
        started = time.perf_counter()
        index = ComparableListings.fit(listings)
        built = time.perf_counter() - started
        index.save(folder)
        size = folder_mb(folder)
        queries.to_parquet(Path(folder) / "queries.parquet")
        done = subprocess.run(
            [sys.executable, "-c", _LOOKUP, folder, str(Path(folder) / "queries.parquet")],
            capture_output=True,
            text=True,
            check=True,
        )
    return {
        "index": label,
        "listings": len(listings),
        "vocabulary": len(index.vectorizer.vocabulary_),
        "build s": built,
        "on disk MB": size,
        **json.loads(done.stdout),
    }


def self_first_share(listings: pd.DataFrame) -> dict:
    """Listings copied from the training data (those whose title and brand appear once): found first?"""
    index = ComparableListings.fit(listings)
    unique = listings[~listings.duplicated(["name", "brand_name"], keep=False)]
    hits = sum(1 for row in unique.to_dict("records") if (found := index.find(row)) and found[0].name == row["name"])
    return {"copies looked up": len(unique), "found themselves first": hits, "share": hits / len(unique)}


def with_wide_vocabulary(training: pd.DataFrame, queries: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same listings with a made-up word added to each title, drawn from 1 M words by a Zipf law
    (as model numbers, sizes and spellings are): the synthetic titles use a few hundred words, genuine
    titles at this size would fill the index's 200,000-word cap."""
    words = np.random.default_rng(0).zipf(1.05, len(training) + len(queries)) % 1_000_000
    named = [frame.copy() for frame in (training, queries)]
    named[0]["name"] = named[0]["name"] + [f" w{word}" for word in words[: len(training)]]
    named[1]["name"] = named[1]["name"] + [f" w{word}" for word in words[len(training) :]]
    return named[0], named[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    fields = ["name", "item_condition_id", "category_name", "brand_name", "price"]
    market = synthetic_market(args.rows + QUERIES, seed=11)
    market = market[market["price"] > 0]
    training, queries = market.iloc[:-QUERIES][fields], market.iloc[-QUERIES:][fields]
    rows = [
        measure(training, queries, "synthetic"),
        measure(*with_wide_vocabulary(training, queries), "synthetic + a made-up word a title"),
    ]
    quality = None
    if GENUINE.is_file():
        genuine = pd.read_csv(GENUINE, sep="\t")
        genuine = genuine[genuine["price"] > 0][fields]
        held_out = genuine.sample(frac=0.2, random_state=0)
        rows.append(measure(genuine.drop(held_out.index), held_out, "genuine sample"))
        quality = self_first_share(genuine)
    table = tabulate(rows, headers="keys", tablefmt="pipe", floatfmt=".2f", intfmt=",")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = f".venv/bin/python benchmarks/comparables.py --rows {args.rows}"
    text = (
        f"Measured {stamp} with `{command} --output {args.output or '-'}` on 2 cores. Build in this process; "
        f"load and {QUERIES:,} lookups of listings not in the index in a fresh process, as the service's "
        "explanation process does (RSS is that process's, numpy and pandas included).\n\n"
        f"{table}\n"
    )
    if quality:
        text += (
            f"\nGenuine rows copied from the training data (title and brand unique): "
            f"{quality['found themselves first']:,} of {quality['copies looked up']:,} found themselves first "
            f"({quality['share']:.1%}).\n"
        )
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
