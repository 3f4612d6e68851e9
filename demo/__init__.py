"""`make demo`: the task end to end, through the real launcher, against the local stand-ins."""
