"""Token datasets for training: local files, HTTP, TCP."""
