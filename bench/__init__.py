"""`make bench`: speed and memory of the task, measured through the real launcher."""
