"""Data stages: demo data, video reading, label import, agreement statistics and pairing."""
