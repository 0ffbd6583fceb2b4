"""Monitoring: what a champion was trained on, and how far new listings or live traffic are from it."""
