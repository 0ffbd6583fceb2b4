"""The service on a champion trained at scale: issue 17's limits for comparable listings, met
where a seller meets them.

Serves the model store that `benchmarks/scale.py --keep-champion DIR` kept (a champion trained
on 1.5 M synthetic listings, its comparables index inside the bundle) with `price-alchemy serve`
on 127.0.0.1, and measures:
- bundle load: `serve` started -> /ready (the service holds the champion), and the first POST
  /predict/explain (the explanation process loads the bundle with its comparables index);
- POST /predict/explain, one seller at a time: the price, its range, the drivers and the
  comparables, for listings the index has not seen (synthetic, and the genuine unlabelled rows of
  ../shared/data/mercari_test_sample.tsv where present: a vocabulary the synthetic market lacks);
- the comparables lookup alone on the same listings, in a fresh process that loads the bundle as
  the explanation process does;
- a lone POST /predict (hey, 1 worker x 20 requests/s), for reference;
- RSS of the service and of its child processes after the runs.
Limits (issue 17): lookup p50 <= 10 ms, bundle load <= 30 s, service RSS <= 1.5 GiB.

    .venv/bin/python benchmarks/scale.py --rows 1500000 --keep-champion /tmp/scale-champion
    .venv/bin/python benchmarks/service_at_scale.py /tmp/scale-champion --output docs/benchmarks/service-at-scale.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from tabulate import tabulate

from price_alchemy_assets.devtools.local_servers import running_service
from price_alchemy_assets.listings.synthetic import synthetic_market
from price_alchemy_assets.model.comparables import FOLDER
from price_alchemy_assets.model.store import FolderModelStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.comparables import folder_mb  # noqa: E402
from benchmarks.service import SHARED, children_rss_mb, listing_bodies, request_bodies, rss_mb, run_hey  # noqa: E402

QUERIES = 500

_LOOKUP = """
import json, sys, time
import numpy as np
started = time.perf_counter()
from price_alchemy_assets.model.bundle import PriceModel
model = PriceModel.load(sys.argv[1], with_comparables=True)
loaded = time.perf_counter() - started
result = {"load s": loaded}
for label, bodies in json.loads(open(sys.argv[2]).read()).items():
    model.comparables.find(bodies[0])
    times = []
    for body in bodies:
        start = time.perf_counter()
        model.comparables.find(body)
        times.append(time.perf_counter() - start)
    result[label] = [float(np.median(times) * 1000), float(np.percentile(times, 99) * 1000)]
print(json.dumps(result))
"""


def explain_times(client, bodies: list[dict]) -> tuple[float, float, float]:
    """p50 and p99 of POST /predict/explain in ms, and the mean number of comparables answered."""
    times, found = [], []
    for body in bodies:
        started = time.perf_counter()
        answer = client.post("/predict/explain", json=body)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        found.append(len(answer.json()["comparables"]))
    return float(np.median(times)), float(np.percentile(times, 99)), float(np.mean(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="the model store benchmarks/scale.py --keep-champion wrote")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not shutil.which("hey"):
        sys.exit("hey not found: apt-get install hey (Debian's package)")
    record = FolderModelStore(args.store).champion()
    if record is None:
        sys.exit(f"{args.store}: no champion.json (run benchmarks/scale.py --keep-champion {args.store})")
    # another seed than the training market's: listings not in the index
    query_sets = {"synthetic, unseen": listing_bodies(synthetic_market(QUERIES, seed=29))}
    if (SHARED / "mercari_test_sample.tsv").is_file():
        query_sets["genuine test rows"] = request_bodies(QUERIES)
    with tempfile.TemporaryDirectory(prefix="price-alchemy-scale-service-") as folder:
        root = Path(folder)
        (root / "queries.json").write_text(json.dumps(query_sets))
        lookup = json.loads(
            subprocess.run(
                [sys.executable, "-c", _LOOKUP, record.model_path, str(root / "queries.json")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        started = time.perf_counter()
        with (
            running_service(args.store, root, reload_seconds=60) as service,
            httpx.Client(base_url=service.url, timeout=120) as client,
        ):
            ready_s = time.perf_counter() - started
            started = time.perf_counter()
            client.post("/predict/explain", json=query_sets["synthetic, unseen"][0]).raise_for_status()
            first_explain_s = time.perf_counter() - started
            rows = []
            for label, bodies in query_sets.items():
                p50, p99, found = explain_times(client, bodies)
                rows.append(
                    {
                        "listings": label,
                        "lookup alone p50 ms": lookup[label][0],
                        "lookup alone p99 ms": lookup[label][1],
                        "/predict/explain p50 ms": p50,
                        "/predict/explain p99 ms": p99,
                        "comparables answered": found,
                    }
                )
            lone = run_hey(f"{service.url}/predict", query_sets["synthetic, unseen"][0], root / "lone.json", 10)
            service_rss, service_peak = rss_mb(service.process.pid)
            children = children_rss_mb(service.process.pid)
    bundle_mb, index_mb = folder_mb(record.model_path), folder_mb(Path(record.model_path) / FOLDER)
    total = service_rss + children
    text = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python benchmarks/service_at_scale.py "
        f"STORE --output {args.output or '-'}` on 2 cores, STORE from `benchmarks/scale.py --rows 1500000 "
        f"--keep-champion STORE`: a champion trained on {record.training_rows:,} synthetic listings, bundle "
        f"{bundle_mb:,.0f} MB on disk of which the comparables index {index_mb:,.1f} MB. {QUERIES} listings per "
        "set, one seller at a time.\n\n"
        + tabulate(rows, headers="keys", tablefmt="pipe", floatfmt=".2f")
        + "\n\n"
        + tabulate(
            [
                ["bundle load: serve started -> /ready (s)", ready_s, "<= 30"],
                ["bundle load: the first /predict/explain, explanation process (s)", first_explain_s, "<= 30"],
                ["bundle load with comparables, fresh process (s)", lookup["load s"], "<= 30"],
                ["lone POST /predict p50 (ms)", lone["p50_ms"], "reference"],
                ["service RSS (MB)", service_rss, ""],
                ["service peak RSS (MB)", service_peak, ""],
                ["its child processes' RSS (MB)", children, ""],
                ["service and children RSS (MB)", total, "<= 1,536"],
            ],
            headers=["measure", "value", "limit"],
            tablefmt="pipe",
            floatfmt=",.2f",
        )
        + "\n"
    )
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
