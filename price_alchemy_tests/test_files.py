"""Reading Kaggle-format files: the columns we produce, and one clear error per bad file."""

from __future__ import annotations

import gzip
import zipfile

import pandas as pd
import pytest

from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS
from price_alchemy_assets.listings.files import ListingsFile, ListingsFileError, read_listings_frame

HEADER = "train_id\tname\titem_condition_id\tcategory_name\tbrand_name\tprice\tshipping\titem_description\n"
ROW = "0\tMLB Cincinnati Reds T Shirt Size XL\t3\tMen/Tops/T-shirts\t\t10.0\t1\tNo description yet\n"
ROW2 = '1\t"Razer ""Chroma"" Keyboard"\t3\tElectronics/Computers & Tablets/Components & Parts\tRazer\t52.0\t0\tWorks\n'


def write(tmp_path, text: str | bytes, name: str = "train.tsv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_reads_train_rows_with_warehouse_columns(tmp_path):
    frame = read_listings_frame(write(tmp_path, HEADER + ROW + ROW2))
    assert list(frame.columns) == list(WAREHOUSE_COLUMNS)
    assert frame["listing_id"].tolist() == ["train-0", "train-1"]
    assert frame["name"].iloc[1] == 'Razer "Chroma" Keyboard'
    assert pd.isna(frame["brand_name"].iloc[0])
    assert frame["price"].tolist() == [10.0, 52.0]
    assert frame["source_line"].tolist() == [2, 3]
    assert frame["created_at"].notna().all() and str(frame["created_at"].dtype) == "datetime64[us, UTC]"


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path):
    with_bom = read_listings_frame(write(tmp_path, "\ufeff" + HEADER + ROW + ROW2, "bom.tsv"))
    without = read_listings_frame(write(tmp_path, HEADER + ROW + ROW2))
    pd.testing.assert_frame_equal(
        with_bom.drop(columns=["source_file", "ingested_at", "created_at"]),
        without.drop(columns=["source_file", "ingested_at", "created_at"]),
    )


def test_unlabelled_test_file_has_no_price(tmp_path):
    text = (
        "test_id\tname\titem_condition_id\tcategory_name\tbrand_name\tshipping\titem_description\n"
        "5\tRing\t1\tWomen/Jewelry/Rings\t\t1\tSize 7\n"
    )
    frame = read_listings_frame(write(tmp_path, text, "test.tsv"))
    assert frame["listing_id"].tolist() == ["test-5"]
    assert frame["price"].isna().all()


def test_created_at_column_is_kept(tmp_path):
    text = HEADER.rstrip("\n") + "\tcreated_at\n" + ROW.rstrip("\n") + "\t2026-01-02T03:04:05Z\n"
    frame = read_listings_frame(write(tmp_path, text))
    assert frame["created_at"].iloc[0] == pd.Timestamp("2026-01-02T03:04:05Z")


def test_gzip_and_zip_read_the_same_rows(tmp_path):
    plain = read_listings_frame(write(tmp_path, HEADER + ROW + ROW2))
    gz = tmp_path / "train.tsv.gz"
    gz.write_bytes(gzip.compress((HEADER + ROW + ROW2).encode()))
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("train.tsv", HEADER + ROW + ROW2)
    for other in (read_listings_frame(gz), read_listings_frame(archive)):
        assert other["row_fingerprint"].tolist() == plain["row_fingerprint"].tolist()


def test_fingerprint_ignores_ingest_time(tmp_path):
    path = write(tmp_path, HEADER + ROW)
    with ListingsFile(path) as first, ListingsFile(path) as second:
        a = next(first.chunks(ingested_at=pd.Timestamp("2020-01-01", tz="UTC")))
        b = next(second.chunks(ingested_at=pd.Timestamp("2024-01-01", tz="UTC")))
    assert a["row_fingerprint"].tolist() == b["row_fingerprint"].tolist()
    assert a["created_at"].tolist() != b["created_at"].tolist()


def test_chunks_are_bounded(tmp_path):
    rows = "".join(ROW.replace("0\t", f"{i}\t", 1) for i in range(25))
    with ListingsFile(write(tmp_path, HEADER + rows)) as listings:
        sizes = [len(chunk) for chunk in listings.chunks(chunk_rows=10)]
    assert sizes == [10, 10, 5]


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (b"", "train.tsv", "train.tsv: empty file"),
        (HEADER.replace("price", "cost") + ROW, "train.tsv", "train.tsv:1: unexpected column(s): cost"),
        (HEADER.replace("\tshipping", "") + ROW, "train.tsv", "train.tsv:1: missing column(s): shipping"),
        (
            HEADER + ROW + ROW.replace("\t3\t", "\tthree\t"),
            "train.tsv",
            "train.tsv:3: column item_condition_id: 'three' is not a whole number",
        ),
        (HEADER + ROW.replace("10.0", "ten"), "train.tsv", "train.tsv:2: column price: 'ten' is not a number"),
        (
            HEADER + ROW + ROW.replace("\t1\tNo", "\tyes\tNo"),
            "train.tsv",
            "train.tsv:3: column shipping: 'yes' is not a whole number",
        ),
        (
            HEADER + ROW + '7\t"Broken quote\t3\tMen/Tops/T-shirts\t\t10.0\t1\tx\n' + ROW,
            "train.tsv",
            "train.tsv:3: column name: broken quoting",
        ),
        (HEADER + ROW + "7\tShort row\t3\n", "train.tsv", "train.tsv:3: expected 8 tab-separated fields, found 3"),
        (
            (HEADER + ROW).encode() + b"8\tCaf\xe9 mug\t3\tHome\t\t10.0\t1\tx\n",
            "train.tsv",
            "train.tsv:3: not valid UTF-8 (byte 0xe9",
        ),
        (
            HEADER + ROW + ROW.replace("No description yet", "x" * 2_000_000) + ROW2,
            "train.tsv",
            "train.tsv:3: column item_description: longer than 1,048,576 characters",
        ),
    ],
    ids=[
        "empty",
        "wrong-column",
        "missing-column",
        "bad-int",
        "bad-price",
        "bad-shipping",
        "broken-quoting",
        "short-row",
        "not-utf8",
        "oversized-field",
    ],
)
def test_bad_files_name_file_line_and_column(tmp_path, content, name, expected):
    path = write(tmp_path, content, name)
    with pytest.raises(ListingsFileError) as raised:
        read_listings_frame(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / expected.split(":")[0]))
    assert expected.split(maxsplit=0)[0].replace("train.tsv", str(path), 1) in message


def test_zip_without_tsv(tmp_path):
    archive = tmp_path / "listings.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "nothing here")
    with pytest.raises(
        ListingsFileError,
        match=r"listings.zip: no .tsv file inside, expected exactly one "
        r"\(found: readme.txt\)",
    ):
        read_listings_frame(archive)


def test_missing_file(tmp_path):
    with pytest.raises(ListingsFileError, match="nope.tsv: no such file"):
        read_listings_frame(tmp_path / "nope.tsv")


def test_genuine_rows_read_cleanly(genuine_train, genuine_test):
    train = read_listings_frame(genuine_train)
    assert len(train) == 7000 and train["listing_id"].is_unique
    reference = pd.read_csv(genuine_train, sep="\t")
    assert train["price"].tolist() == reference["price"].tolist()
    assert train["name"].tolist() == reference["name"].tolist()
    test = read_listings_frame(genuine_test)
    assert len(test) == 2001 and test["price"].isna().all()
