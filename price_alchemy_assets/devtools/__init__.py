"""Local servers for the tests and the benchmarks: `price-alchemy serve` as a user starts it, and
the BigQuery REST emulator. Nothing in the platform imports them."""
