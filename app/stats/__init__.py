"""Stats: conversions, the rollup job that keeps running totals, and the stats API."""
