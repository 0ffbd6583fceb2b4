"""`price-alchemy`: make, load and process listings from the command line."""

import os
import signal
import sys
import uuid
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import click
from tqdm import tqdm

from price_alchemy_assets import settings
from price_alchemy_assets.listings.files import ListingsFileError
from price_alchemy_assets.listings.synthetic import DriftKind, write_synthetic_listings
from price_alchemy_assets.warehouse import WarehouseBusy
from price_alchemy_assets.warehouse.ingest import DEFAULT_CHUNK_ROWS, ingest_listings_file


class _Failure(click.ClickException):
    """One line on stderr and exit code 1, without a traceback."""

    def show(self, file=None) -> None:
        click.echo(f"price-alchemy: error: {self.message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(context: click.Context) -> None:
    """Price Alchemy: price suggestions for second-hand listings, on Dagster assets.

    Settings come from PRICE_ALCHEMY_* environment variables: `price-alchemy settings` lists them."""
    settings.dagster_home()
    try:
        context.obj = settings.settings_at_start()
    except settings.SettingsError as error:
        raise _Failure(f"settings: {error}") from None


def _settings() -> settings.Settings:
    return click.get_current_context().find_root().obj


@contextmanager
def _warehouse():
    from price_alchemy_assets.defs.resources import open_warehouse

    opened = False
    try:
        with open_warehouse(_settings()) as warehouse:
            opened = True
            yield warehouse
    except WarehouseBusy as busy:
        raise _Failure(f"{busy} (nothing was changed; try again when it finishes)") from busy
    except Exception as error:
        if opened:
            raise
        raise _Failure(f"warehouse configuration: {error}") from error  # names the variable at fault


@main.command()
@click.option("--rows", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="first created_at (UTC); default: --days before now",
)
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True)
@click.option(
    "--drift",
    type=click.Choice([kind.value for kind in DriftKind]),
    default=None,
    help="make a shifted batch for drift detection",
)
@click.option("--strength", type=click.FloatRange(min=0), default=1.0, show_default=True, help="how strong --drift is")
@click.option("--first-id", type=click.IntRange(min=0), default=None, help="first train_id; default seed x 10^7")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="a .tsv or .tsv.gz path; default DATA_DIR/synthetic/listings-seedS.tsv",
)
def synth(rows, seed, start, days, drift, strength, first_id, output) -> None:
    """Write a synthetic marketplace in Kaggle's train.tsv format (plus created_at)."""
    output = output or _settings().data_dir / "synthetic" / f"listings-seed{seed}{'-' + drift if drift else ''}.tsv"
    start = start.replace(tzinfo=UTC) if start else None
    with tqdm(total=rows, unit="rows", desc="synth", disable=None) as bar:
        path = write_synthetic_listings(
            output,
            rows,
            seed=seed,
            start=start,
            days=days,
            drift=DriftKind(drift) if drift else None,
            strength=strength,
            first_id=first_id,
            on_chunk=bar.update,
        )
    click.echo(f"wrote {rows:,} listings to {path}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS, show_default=True)
def ingest(paths, chunk_rows) -> None:
    """Load Kaggle-format train.tsv / test.tsv files (plain, .gz or .zip) into the warehouse.

    Each file goes in whole or not at all; rows already stored are not added again."""
    with _warehouse() as warehouse:
        for path in paths:
            _ingest_one(warehouse, path, chunk_rows)
        _observe_listings_table(warehouse)


def _observe_listings_table(warehouse) -> None:
    """Record the table's new data version in the Dagster instance, so the UI marks raw_listings and
    what follows it stale now, not at the next hourly observation."""
    import dagster as dg
    from dagster._core.definitions.data_version import DATA_VERSION_TAG  # what an observation run writes

    from price_alchemy_assets.defs.listings import LISTINGS_TABLE, listings_table_version

    version, metadata = listings_table_version(warehouse)
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetObservation(LISTINGS_TABLE, metadata=metadata, tags={DATA_VERSION_TAG: version.value})
        )


def _ingest_one(warehouse, path: Path, chunk_rows: int) -> None:
    with tqdm(unit="B", unit_scale=True, desc=path.name, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            result = ingest_listings_file(path, warehouse, chunk_rows=chunk_rows, on_progress=progress)
        except ListingsFileError as error:
            raise _Failure(f"{error} (nothing from this file was stored)") from error
    click.echo(
        f"{path}: {result.rows_read:,} rows read, {result.rows_added:,} new, "
        f"{result.rows_already_present:,} already stored -> {warehouse.describe()}"
    )


@main.command()
def status() -> None:
    """What the warehouse holds."""
    with _warehouse() as warehouse:
        summary = warehouse.summary()
        click.echo(f"warehouse: {warehouse.describe()}")
    for key, value in summary.items():
        click.echo(f"  {key}: {value}")


_RUN_CONFIG = click.option(
    "--config",
    "run_config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="run config file (YAML or JSON, as `dagster job execute -c`), e.g. "
    "'ops: {tuned_model: {config: {budget: {max_evals: 4}, blend: {mlp: {networks: 1}}}}}'",
)


def _read_run_config(path: Path | None) -> dict:
    """A run config file as a mapping; anything else is one line naming the file."""
    if path is None:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f":{where.line + 1}" if where else ""
        raise _Failure(f"{path}{line}: not a YAML or JSON run config ({getattr(error, 'problem', error)})") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        example = "'ops: {tuned_model: {config: {budget: {max_evals: 4}}}}'"
        raise _Failure(f"{path}: a run config is a mapping, e.g. {example}")
    return loaded


def _merged(base: dict, override: dict) -> dict:
    """`override` laid over `base`, mapping by mapping."""
    merged = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


@main.command()
@click.option("--select", default=None, help="asset selection, e.g. 'raw_listings validated_listings'")
@_RUN_CONFIG
def materialize(select, run_config) -> None:
    """Run the main job in this process, recorded in $DAGSTER_HOME so the Dagster UI shows it."""
    if not _run_main_job(select, _read_run_config(run_config)):
        raise _Failure("the run failed; see the messages above or the run in the Dagster UI")


def _run_main_job(select: str | None = None, run_config: dict | None = None) -> bool:
    import dagster as dg

    from price_alchemy_assets.definitions import MAIN_JOB, defs
    from price_alchemy_assets.run_progress import RunProgress

    job = defs.resolve_job_def(MAIN_JOB)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    run_id = str(uuid.uuid4())  # known before the run starts, so its progress can be followed
    with dg.DagsterInstance.get() as instance:
        click.echo(f"run {run_id} of {MAIN_JOB} (progress below; the whole log in the Dagster UI)")
        try:
            with RunProgress(instance, run_id, say=click.echo):
                result = job.execute_in_process(
                    instance=instance,
                    raise_on_error=False,
                    run_config=_merged(quiet, run_config or {}),
                    asset_selection=[dg.AssetKey(key) for key in select.split()] if select else None,
                    run_id=run_id,
                )
        except dg.DagsterInvalidConfigError as error:
            problems = "; ".join(" ".join(problem.message.split()) for problem in error.errors)
            raise _Failure(f"run config: {problems}") from error
        _print_run(result)
    return result.success


def _print_run(result) -> None:
    import dagster as dg

    click.echo(f"\nrun {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    details = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        rows = f"{metadata['dagster/row_count'].value:>10,} rows" if "dagster/row_count" in metadata else ""
        click.echo(f"  materialized {materialization.asset_key.to_user_string():<22} {rows}")
        if "report" in metadata:
            details.append(metadata["report"].value)
        if "reason" in metadata:
            details.append(f"champion: {metadata['reason'].value}")
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
            click.echo(f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name:<20} {verdict}")
    for detail in details:
        click.echo(f"\n{detail}")


@main.command()
@click.option("--max-evals", type=click.IntRange(min=1), default=None, help="hyperopt trials (default: asset default)")
@click.option("--timeout", type=click.FloatRange(min=1), default=None, help="tuning wall-clock budget, seconds")
@_RUN_CONFIG
def train(max_evals, timeout, run_config) -> None:
    """Materialize everything from raw_listings to the champion, then print the eval report.

    --max-evals and --timeout win over the same settings in --config."""
    budget = {key: value for key, value in (("max_evals", max_evals), ("timeout_seconds", timeout)) if value}
    given = {"ops": {"tuned_model": {"config": {"budget": budget}}}} if budget else {}
    config = _merged(_read_run_config(run_config), given)
    if not _run_main_job(run_config=config):
        raise _Failure("the run failed; see the messages above or the run in the Dagster UI")
    click.echo(_where_to_look())


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV to write")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS, show_default=True)
def predict(input_path, output, chunk_rows) -> None:
    """Score a Kaggle-format train.tsv / test.tsv with the champion: id, price, price_low, price_high.

    Rows that cannot be scored go to OUTPUT's .rejected.csv with the line and the reason."""
    from price_alchemy_assets.model.bundle import limit_blas_threads
    from price_alchemy_assets.model.scoring import score_file
    from price_alchemy_assets.model.store import ChampionUnreadable

    limit_blas_threads()
    # SIGTERM as an exception, as Ctrl-C is: score_file's cleanup then removes its .partial files
    signal.signal(signal.SIGTERM, _exit_on_signal)
    if not output.parent.is_dir():
        raise _Failure(f"--output {output}: the folder {output.parent} does not exist")
    store = _settings().open_model_store()
    try:
        champion = store.load_champion()
    except ChampionUnreadable as error:
        raise _Failure(f"{error}; train again or repair the pointer (no predictions written)") from error
    if champion is None:
        raise _Failure(f"no champion in {store.location}; run `price-alchemy train` first")
    record, model = champion
    with tqdm(unit="B", unit_scale=True, desc=input_path.name, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            result = score_file(input_path, model, output, chunk_rows, on_progress=progress)
        except ListingsFileError as error:
            raise _Failure(f"{error} (no predictions written)") from error
        except OSError as error:  # the output cannot be written: a read-only folder, a full disk
            raise _Failure(f"{error.filename}: {error.strerror} (no predictions written)") from error
    click.echo(
        f"scored {result.scored:,} listings with champion {record.version} -> {result.output}; "
        f"{result.rejected:,} could not be scored -> {result.rejects}"
    )


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _where_to_look() -> str:
    tracking = _settings().mlflow.tracking_uri
    return (
        f"\nDagster home: {os.environ['DAGSTER_HOME']}\n"
        "Assets, lineage, checks and the eval report in the Dagster UI:\n"
        "  .venv/bin/price-alchemy ui    then open http://127.0.0.1:3000\n"
        "Trials, runs and the registered model in the MLflow UI:\n"
        f"  .venv/bin/mlflow ui --backend-store-uri {tracking} --host 127.0.0.1 --port 5000"
    )


@main.command()
@click.option("--rows", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@_RUN_CONFIG
def demo(rows, seed, run_config) -> None:
    """Synthesize a marketplace, ingest it and train to a champion: the README's first command."""
    config = _read_run_config(run_config)
    path = _settings().data_dir / "synthetic" / f"demo-seed{seed}-{rows}.tsv"
    click.get_current_context().invoke(synth, rows=rows, seed=seed, output=path, days=30.0, strength=1.0)
    click.get_current_context().invoke(ingest, paths=(path,), chunk_rows=DEFAULT_CHUNK_ROWS)
    ok = _run_main_job(run_config=config)
    click.echo(_where_to_look())
    if not ok:
        raise _Failure("the main job failed")


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
def ui(port) -> None:
    """Start the Dagster webserver and daemon (`dagster dev`) on 127.0.0.1."""
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    args = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    args += ["-w", str(workspace)] if workspace.is_file() else ["-m", "price_alchemy_assets.definitions"]
    click.echo(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # so Ctrl-C and kill stop `dagster dev`
    os.execv(sys.executable, args)


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8888, show_default=True)
@click.option("--browser/--no-browser", default=True, show_default=True, help="open it in a web browser")
def notebook(port, browser) -> None:
    """Open notebooks/explore.ipynb in JupyterLab on 127.0.0.1, reading this Dagster home's assets."""
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    jupyter = Path(sys.executable).with_name("jupyter-lab")
    if not (notebooks / "explore.ipynb").is_file() or not jupyter.is_file():
        raise _Failure(f"needs the project's checkout ({notebooks}) and JupyterLab (bash scripts/setup.sh)")
    args = [str(jupyter), "--ip=127.0.0.1", f"--port={port}", f"--ServerApp.root_dir={notebooks}"]
    args += [] if browser else ["--no-browser"]
    args += ["--allow-root"] if os.geteuid() == 0 else []  # containers and CI machines run as root
    click.echo(f"JupyterLab on http://127.0.0.1:{port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(str(jupyter), [*args, str(notebooks / "explore.ipynb")])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(min=1, max=65535), default=8000, show_default=True)
def serve(host, port) -> None:
    """Serve the champion over HTTP: the API, the seller page at / and the OpenAPI schema at /schema."""
    import uvicorn

    from price_alchemy_assets.service.app import asgi_app
    from price_alchemy_assets.service.slow_clients import with_head_deadline

    configured = _settings()
    click.echo(f"Price Alchemy service on http://{host}:{port} (seller page at /, OpenAPI at /schema)")
    uvicorn.run(
        asgi_app(configured),
        host=host,
        port=port,
        http=with_head_deadline(configured.service.client_timeout_seconds),
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


@main.command(name="settings")
@click.option("--table", is_flag=True, help="print the README's configuration table (Markdown) instead")
def show_settings(table) -> None:
    """Every PRICE_ALCHEMY_* setting and the value it has now (secrets hidden)."""
    if table:
        click.echo(settings.configuration_table())
        return
    current = _settings()
    for variable, value in settings.current_values(current):
        click.echo(f"{variable}={value}{'' if variable in current.from_environment else '  (default)'}")


if __name__ == "__main__":
    main()
