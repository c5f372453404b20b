"""`psyche dashboard`: a run's live web page built from public chain data (see server.py and feed.py)."""
