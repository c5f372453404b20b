"""Account layouts, instruction builders and the async client for the coordinator program."""
